package routes

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/store"
)

// What the gate's StepUp answers a password session on a path that needs
// a second factor: a browser goes to the step-up page and back, a script
// gets 401 second_factor_required naming the route, and a user with no
// second factor is sent to set one up.
func TestStepUpSendsBrowsersToThePageAndRefusesScripts(t *testing.T) {
	site := New(Config{LoginPath: "/login", APIPath: "/api/auth", AccountPath: "/account", Home: "/"},
		&Shared{}, zap.NewNop())
	now := time.Now()
	session := func(secondFactor bool) engine.Session {
		return engine.FromLive(engine.KeyOf("token"), store.LiveSession{UserID: "user-1", Username: "alice",
			SecondFactor: secondFactor, ExpiresAt: now.Add(time.Hour), LastSeenAt: now, CheckedAt: now,
			Method: store.MethodPassword}, now)
	}
	ask := func(sess engine.Session, method, accept string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/admin/reports?year=2026", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		w := httptest.NewRecorder()
		assert.NoError(t, site.StepUp(w, r, sess))
		return w
	}
	const browser = "text/html,application/xhtml+xml,*/*;q=0.8"

	w := ask(session(true), http.MethodGet, browser)
	assert.Equal(t, http.StatusSeeOther, w.Code)
	assert.Equal(t, "/login/step-up?redirect=%2Fadmin%2Freports%3Fyear%3D2026", w.Header().Get("Location"))

	w = ask(session(true), http.MethodGet, "*/*")
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.JSONEq(t, `{"error":"This path needs a second factor: sign in again with it or step up at POST /api/auth/step-up"}`, w.Body.String())
	assert.Equal(t, http.StatusUnauthorized, ask(session(true), http.MethodPost, browser).Code,
		"a form is not redirected: its body would be lost")

	w = ask(session(false), http.MethodGet, browser)
	assert.Equal(t, http.StatusSeeOther, w.Code)
	assert.Equal(t, "/account#two-step", w.Header().Get("Location"))
	w = ask(session(false), http.MethodGet, "")
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.JSONEq(t, `{"error":"Second factor enrolment required"}`, w.Body.String())
}
