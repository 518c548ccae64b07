package pgsession

import (
	"html"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What the forward-auth endpoint decides, as the gate decides: the site's
// access rules on the forwarded method and path, the second factor a rule
// asks for, a session's end, and all of it from memory.

// The rules apply to the method and path the proxy forwards: a rule that
// keeps a user out is 403 (a page for a browser, JSON for a script), a
// path it allows is 200, and a cross-site write is refused as at the gate.
func TestVerifyAppliesTheRulesToTheForwardedRequest(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	s := startSite(t, siteOptions{db: db.url, trustForwardedFor: true,
		handler: "allow /admin/* group admins\n\tdeny /docs/* method POST\n\tallow /* any_user"})
	token, _ := db.sessionInDB(t, alice)
	cookie := []string{"Cookie", cookieHeader(token)}

	for _, tc := range []struct {
		method, uri string
		want        int
		extra       []string
	}{
		{http.MethodGet, "/docs/x", http.StatusOK, nil},
		{http.MethodGet, "/ADMIN/../admin/users", http.StatusForbidden, nil},
		{http.MethodGet, "/admin/users", http.StatusForbidden, nil},
		{http.MethodPost, "/docs/x", http.StatusForbidden, nil},
		{http.MethodPost, "/notes", http.StatusOK, nil},
		{http.MethodPost, "/notes", http.StatusForbidden, []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
	} {
		resp := verify(t, s, "", append(asProxy(tc.method, "app.example.com", tc.uri, cookie...), tc.extra...)...)
		assert.Equal(t, tc.want, resp.StatusCode, "%s %s %v: %s", tc.method, tc.uri, tc.extra, resp.body)
		if tc.want == http.StatusOK {
			assert.Equal(t, "alice", resp.Header.Get("X-Auth-Username"))
		} else {
			assert.Empty(t, resp.Header.Get("X-Auth-Username"), "a refusal names nobody to the proxy")
		}
	}
	resp := verify(t, s, "", asProxy(http.MethodGet, "app.example.com", "/admin/users", cookie...)...)
	assert.JSONEq(t, `{"error":"Forbidden"}`, resp.body)
	resp = verify(t, s, "", asProxy(http.MethodGet, "app.example.com", "/admin/users", append(cookie, "Accept", browserAccept)...)...)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, resp.body, "You are signed in as alice", "a browser gets the forbidden page")
	resp = verify(t, s, "", asProxy(http.MethodPost, "app.example.com", "/notes",
		append(cookie, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")...)...)
	assert.JSONEq(t, `{"error":"Cross-origin request refused"}`, resp.body)

	apiToken := db.addAPIToken(t, alice, "ci", nil, false)
	resp = verify(t, s, "", asProxy(http.MethodGet, "app.example.com", "/docs/x", bearer(apiToken)...)...)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Equal(t, "alice", resp.Header.Get("X-Auth-Username"))
	_, method := resp.Header["X-Auth-Method"]
	assert.False(t, method, "no sign-in stands behind an API token")
}

// A rule with second_factor sends a password session's browser to the
// portal's step-up page with the absolute address, which takes it back
// there once the code is given; a script gets 401 second_factor_required,
// and a user without a factor is sent to set one up.
func TestVerifyStepsUpThroughThePortal(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse")
	db.addUser(t, "bob", "correct horse")
	db.joinGroups(t, "alice", "admins")
	db.joinGroups(t, "bob", "admins")
	s := startSite(t, siteOptions{db: db.url, app: "secrets_key " + testSecretsKey, trustForwardedFor: true,
		handler: "trusted_origins https://app.example.com\n\tallow /admin/* group admins second_factor\n\tallow /* any_user"})
	b := newBrowser(t)
	b.login(s, "alice", "correct horse")
	secret, _ := enrolTOTP(t, s, b)
	cookie := []string{"Cookie", cookieHeader(b.cookie(s))}
	const abs = "https://app.example.com/admin/users?page=2"
	original := []string{"X-Forwarded-For", "203.0.113.7", "X-Original-URL", abs}
	stepUp := s.url("/login/step-up?redirect=" + url.QueryEscape(abs))

	assert.Equal(t, http.StatusOK, verify(t, s, "", "X-Forwarded-For", "203.0.113.7", "X-Original-URL",
		"https://app.example.com/docs/x", cookie[0], cookie[1]).StatusCode, "other paths need no second factor")
	resp := verify(t, s, "", append(original, append(cookie, "Accept", browserAccept)...)...)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, stepUp, resp.Header.Get("Location"))
	resp = verify(t, s, "?for=nginx", append(original, append(cookie, "Accept", browserAccept)...)...)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
	assert.Equal(t, stepUp, resp.Header.Get("Location"))
	resp = verify(t, s, "", append(original, cookie...)...)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, "second factor")

	page := b.getPage(stepUp)
	require.Equal(t, http.StatusOK, page.StatusCode, page.body)
	assert.Contains(t, page.body, html.EscapeString(abs), "the step-up page keeps the absolute address to go back to")
	right := b.postForm(s.url("/login/step-up"), url.Values{"code": {laterCode(t, secret, 1)}, "redirect": {abs}})
	require.Equal(t, http.StatusSeeOther, right.StatusCode, right.body)
	assert.Equal(t, abs, right.Header.Get("Location"), "back to the proxy's page")
	resp = verify(t, s, "", append(original, cookie...)...)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Equal(t, "password+totp", resp.Header.Get("X-Auth-Method"))

	bob := newBrowser(t)
	bob.login(s, "bob", "correct horse")
	bobs := []string{"Cookie", cookieHeader(bob.cookie(s))}
	resp = verify(t, s, "", append(original, append(bobs, "Accept", browserAccept)...)...)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, s.url("/account#two-step"), resp.Header.Get("Location"), "a user without a factor sets one up")
	assert.Equal(t, http.StatusForbidden, verify(t, s, "", append(original, bobs...)...).StatusCode)
}

// A session ended on another server is refused by the next check here,
// although this server answered it from memory a moment before.
func TestVerifyRefusesASessionOnceItEnds(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	a := startSite(t, siteOptions{db: db.url})
	s := startSite(t, siteOptions{db: db.url, trustForwardedFor: true})
	waitListening(t, s)
	b := newBrowser(t)
	b.login(a, "alice", "correct horse battery")
	cookie := []string{"Cookie", cookieHeader(b.cookie(a))}
	for range 2 {
		require.Equal(t, http.StatusOK, verify(t, s, "", asProxy(http.MethodGet, "app.example.com", "/", cookie...)...).StatusCode)
	}
	require.Equal(t, http.StatusOK, b.postJSON(a.url("/api/auth/logout"), nil).StatusCode)
	require.Eventually(t, func() bool {
		return verify(t, s, "", asProxy(http.MethodGet, "app.example.com", "/", cookie...)...).StatusCode == http.StatusUnauthorized
	}, 10*time.Second, 5*time.Millisecond, "the logout reaches the other server")
	resp := verify(t, s, "", asProxy(http.MethodGet, "app.example.com", "/", append(cookie, "Accept", browserAccept)...)...)
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "a browser is sent to sign in again")
}

// A check of a session this server knows runs no SQL: with the sessions
// table renamed away, so that any look-up would fail, every check still
// passes, each a hit of memory and none a miss; without memory the same
// check fails. Each check counts as the gate's do.
func TestVerifyRunsNoQueryForAKnownSession(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	cookie := []string{"Cookie", cookieHeader(token)}
	s := startSite(t, siteOptions{db: db.url, trustForwardedFor: true})
	off := startSite(t, siteOptions{db: db.url, app: "cache_size 0", trustForwardedFor: true})
	waitListening(t, s)
	check := func(site *testSite) int {
		return verify(t, site, "", asProxy(http.MethodGet, "app.example.com", "/docs/x", cookie...)...).StatusCode
	}
	// Memory is trusted once the site has caught up with the database,
	// which a slow machine may delay.
	require.Eventually(t, func() bool {
		return check(s) == http.StatusOK && s.metric(t, "cache_lookups_total", "result", "hit") >= 1
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, http.StatusOK, check(off))

	hits, misses := s.metric(t, "cache_lookups_total", "result", "hit"), s.metric(t, "cache_lookups_total", "result", "miss")
	allowed := s.metric(t, "gate_requests_total", "outcome", "allowed")
	db.exec(t, `ALTER TABLE pgsession.sessions RENAME TO sessions_away`)
	defer db.exec(t, `ALTER TABLE pgsession.sessions_away RENAME TO sessions`)
	const checks = 20
	for range checks {
		assert.Equal(t, http.StatusOK, check(s), "from memory, no query")
	}
	assert.Equal(t, hits+checks, s.metric(t, "cache_lookups_total", "result", "hit"))
	assert.Equal(t, misses, s.metric(t, "cache_lookups_total", "result", "miss"), "no look-up asked the database")
	assert.Equal(t, allowed+checks, s.metric(t, "gate_requests_total", "outcome", "allowed"))
	assert.Equal(t, http.StatusServiceUnavailable, check(off), "without memory, every check asks the database")
	assert.Equal(t, 1.0, off.metric(t, "gate_requests_total", "outcome", "store_error"))
}
