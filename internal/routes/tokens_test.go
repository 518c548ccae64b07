package routes

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// A request an API token authenticated is refused by every route that
// manages tokens, the JSON ones and the account form's, before any of them
// reads the store (this site has none): a leaked token cannot make itself
// a successor.
func TestTokenRoutesRefuseAnAPIToken(t *testing.T) {
	h := &accountRoutes{}
	c := &caller{session: &store.Session{User: store.User{ID: "u", Username: "alice"}}, apiToken: true}
	form := func(action string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/account", strings.NewReader(url.Values{"action": {action}, "token_name": {"x"}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}
	for name, serve := range map[string]func() error{
		"GET tokens": func() error {
			return h.serveOwnTokens(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), c)
		},
		"POST tokens": func() error {
			return h.serveCreateToken(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"name":"x"}`)), c)
		},
		"DELETE token": func() error {
			return h.serveRevokeToken(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, "/", nil), c)
		},
		"form create": func() error { return h.serveAccountForm(httptest.NewRecorder(), form("token-create"), c) },
		"form revoke": func() error { return h.serveAccountForm(httptest.NewRecorder(), form("token-revoke"), c) },
	} {
		var ref *Refusal
		require.True(t, errors.As(serve(), &ref), name)
		assert.Equal(t, ReasonNotWithAPIToken, ref.Reason(), name)
		assert.Equal(t, http.StatusForbidden, ReasonStatus[ref.Reason()], name)
		assert.Equal(t, "API tokens cannot manage API tokens, the password or second factors", ref.Error(), name)
	}
}
