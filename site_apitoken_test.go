package pgsession

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// addAPIToken makes a token for u and returns it.
func (db *testDB) addAPIToken(t *testing.T, u *store.User, name string, paths []string, admin bool) string {
	t.Helper()
	token, _, err := db.store.CreateAPIToken(context.Background(), u.ID, name, time.Time{}, paths, admin)
	require.NoError(t, err)
	return token
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

// A script's API token acts as its user on the gated site: the upstream
// learns who it is and never sees the token; the token's paths and the
// site's rules (with the user's groups) both apply; the plugin's own
// account routes do not take it.
func TestAPITokensActAsTheirUserUnderTheRules(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice, bob := db.addUser(t, "alice", "correct horse battery"), db.addUser(t, "bob", "correct horse battery")
	db.joinGroups(t, "alice", "staff")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%s groups=%s authorization=%q", r.Header.Get("X-Auth-Username"), r.Header.Get("X-Auth-Groups"),
			r.Header.Get("Authorization"))
	})
	c := startSite(t, siteOptions{db: db.url, next: up.proxy(), handler: "allow /internal/* group staff"})
	aliceToken := db.addAPIToken(t, alice, "ci", nil, false)
	limited := db.addAPIToken(t, alice, "metrics", []string{"/metrics/*"}, false)
	bobToken := db.addAPIToken(t, bob, "ci", nil, false)
	get := func(token, path string) reply {
		t.Helper()
		return sendRaw(t, http.MethodGet, c.url(path), "", bearer(token)...)
	}

	for range 2 { // from the database, then from memory
		resp := get(aliceToken, "/internal/plan")
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		assert.Equal(t, `user=alice groups=staff authorization=""`, resp.body, "the upstream never sees the token")
	}
	assert.Equal(t, http.StatusForbidden, get(bobToken, "/internal/plan").StatusCode, "the rules apply to tokens too")
	assert.Equal(t, http.StatusOK, get(bobToken, "/app").StatusCode)

	assert.Equal(t, http.StatusOK, get(limited, "/metrics/cpu").StatusCode)
	resp := get(limited, "/app")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a token limited to paths reaches only those")
	assert.JSONEq(t, `{"error":"Forbidden"}`, resp.body)

	// None of the plugin's own routes but the admin API takes a token.
	for _, route := range []struct{ method, path string }{
		{http.MethodGet, "/api/auth/me"}, {http.MethodGet, "/api/auth/sessions"}, {http.MethodPost, "/api/auth/password"},
		{http.MethodPost, "/api/auth/totp/setup"}, {http.MethodPost, "/account"}, {http.MethodGet, "/account"},
		{http.MethodGet, "/api/auth/tokens"}, {http.MethodPost, "/api/auth/tokens"},
	} {
		resp := sendRaw(t, route.method, c.url(route.path), `{}`, append(bearer(aliceToken), "Content-Type", "application/json")...)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s %s: %s", route.method, route.path, resp.body)
		assert.Contains(t, resp.body, "API tokens cannot")
	}
	assert.NotContains(t, c.logs(), aliceToken[len(store.APITokenPrefix):], "a token never reaches the log")

	tokens, err := db.store.ListAPITokens(t.Context(), alice.ID)
	require.NoError(t, err)
	for _, tok := range tokens {
		if tok.Name == "ci" {
			assert.WithinDuration(t, time.Now(), tok.LastUsedAt, time.Minute, "the use is recorded")
			assert.Equal(t, "127.0.0.1", tok.LastUsedFrom)
		}
	}
}

// The admin API takes an API token only with the admin scope, which only an
// admin's token has, and only while its user is an admin.
func TestAdminScopedTokensReachTheAdminAPI(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	root := db.addAdmin(t, "root", "root's long password")
	scoped := db.addAPIToken(t, root, "automation", nil, true)
	plain := db.addAPIToken(t, root, "read", nil, false)
	c := startSite(t, siteOptions{db: db.url})
	users := func(token string) int {
		return sendRaw(t, http.MethodGet, c.url("/api/auth/admin/users"), "", bearer(token)...).StatusCode
	}
	assert.Equal(t, http.StatusOK, users(scoped))
	assert.Equal(t, http.StatusForbidden, users(plain), "a token without the admin scope is no admin")
	db.exec(t, `UPDATE pgsession.users SET is_admin = false WHERE id = $1`, root.ID)
	require.Eventually(t, func() bool { return users(scoped) == http.StatusForbidden }, 5*time.Second, time.Millisecond,
		"a scoped token of a user who is no longer admin is no admin")
}

// Revoking a token on one server refuses it on the other at once, as a
// logout does a session; a token past its expiry is refused too.
func TestARevokedAPITokenIsRefusedOnEveryServer(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	b := startSite(t, siteOptions{db: db.url})
	for _, tc := range []struct {
		name   string
		revoke func(token string)
	}{
		{"the command line", func(string) { cliOK(t, db.url, "", "token", "revoke", "alice", "--all") }},
		{"the store", func(token string) {
			list, err := db.store.ListAPITokens(t.Context(), alice.ID)
			require.NoError(t, err)
			require.NoError(t, db.store.RevokeAPIToken(t.Context(), alice.ID, list[0].Handle))
		}},
		{"an expiry moved earlier in SQL", func(token string) {
			db.exec(t, `UPDATE pgsession.api_tokens SET expires_at = now() WHERE id = $1`, string(store.HashAPIToken(token)))
		}},
	} {
		token := db.addAPIToken(t, alice, "ci", nil, false)
		status := func() int { return sendRaw(t, http.MethodGet, b.url("/app"), "", bearer(token)...).StatusCode }
		require.Equal(t, http.StatusOK, status())
		require.Equal(t, http.StatusOK, status(), "known to b")
		start := time.Now()
		tc.revoke(token)
		require.Eventually(t, func() bool { return status() == http.StatusUnauthorized }, 5*time.Second, time.Millisecond,
			"%s: b kept serving a revoked token", tc.name)
		t.Logf("%s: b refused after %v", tc.name, time.Since(start).Round(time.Millisecond))
	}
}

// Wrong tokens count against the address as failed logins do, on every
// server, until the address gets 429 with Retry-After; a malformed one is
// refused without a query.
func TestWrongAPITokensAreThrottled(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	good := db.addAPIToken(t, alice, "ci", nil, false)
	c := startSite(t, siteOptions{db: db.url, handler: "max_failed_logins_per_ip 3"})
	wrong := func(i int) string {
		return store.APITokenPrefix + strings.Repeat("A", store.TokenLength-2) + strconv.Itoa(i%10) + "A"
	}
	for i := range 3 {
		resp := sendRaw(t, http.MethodGet, c.url("/app"), "", bearer(wrong(i))...)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
		assert.JSONEq(t, `{"error":"Invalid API token"}`, resp.body)
	}
	resp := sendRaw(t, http.MethodGet, c.url("/app"), "", bearer(wrong(4))...)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, resp.body)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.Equal(t, http.StatusTooManyRequests, sendRaw(t, http.MethodGet, c.url("/app"), "", bearer(good)...).StatusCode,
		"past the limit the address checks no token, not even a right one")
	assert.Equal(t, http.StatusUnauthorized, sendRaw(t, http.MethodGet, c.url("/app"), "", bearer("pgs_short")...).StatusCode)
	assert.Equal(t, 3, db.count(t, `SELECT count(*) FROM pgsession.login_attempts WHERE kind = 'token'`))
}

// A script still sending an expired token shows in its owner's sign-in
// history, without the token; a token naming no token shows nowhere.
func TestAnExpiredAPITokenInTheHistory(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token := db.addAPIToken(t, alice, "ci", nil, false)
	c := startSite(t, siteOptions{db: db.url})
	db.exec(t, `UPDATE pgsession.api_tokens SET expires_at = now() WHERE id = $1`, string(store.HashAPIToken(token)))
	require.Equal(t, http.StatusUnauthorized, sendRaw(t, http.MethodGet, c.url("/app"), "", bearer(token)...).StatusCode)
	history, err := db.store.SignInHistory(t.Context(), alice.ID, 10)
	require.NoError(t, err)
	require.Len(t, history, 1)
	assert.Equal(t, store.SignInFailure, history[0].Outcome)
	assert.Equal(t, store.FactorAPIToken, history[0].Factor)
	assert.NotContains(t, db.historyText(t), token[len(store.APITokenPrefix):])
}
