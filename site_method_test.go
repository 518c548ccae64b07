package pgsession

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// The upstream learns how the session was signed in from X-Auth-Method and
// the {http.auth.user.method} placeholder, from the database and from
// memory alike; a client cannot send its own.
func TestTheMethodReachesTheUpstreamAndCannotBeForged(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		method, sent := r.Header["X-Auth-Method"]
		fmt.Fprintf(w, "method=%q sent=%v placeholder=%q", method, sent, r.Header.Get("X-Method-Placeholder"))
	})
	c := startSite(t, siteOptions{db: db.url, handler: "public /public/*",
		next: up.proxy("X-Method-Placeholder", "{http.auth.user.method}")})

	b := newBrowser(t)
	resp := b.get(c.url("/public/x"), "X-Auth-Method", "passkey")
	assert.Equal(t, `method=[] sent=false placeholder=""`, resp.body, "a client-sent X-Auth-Method never reaches the upstream")

	b.login(c, "alice", "correct horse battery")
	for range 2 { // from the database, then from memory
		resp = b.get(c.url("/app"), "X-Auth-Method", "passkey")
		assert.Equal(t, `method=["password"] sent=true placeholder="password"`, resp.body)
	}
	assert.Equal(t, "password", b.get(c.url("/api/auth/me")).json(t)["auth_method"])

	token, _, err := db.store.CreateSession(context.Background(), store.SessionParams{User: *alice, Lifetime: time.Hour,
		Method: store.MethodPasskey})
	require.NoError(t, err)
	resp = sendRaw(t, http.MethodGet, c.url("/app"), "", "Cookie", cookieHeader(token), "X-Auth-Method", "password")
	assert.Equal(t, `method=["passkey"] sent=true placeholder="passkey"`, resp.body)
}
