package pgsession

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// The forward-auth endpoint, GET /api/auth/verify, asked as a proxy asks
// it: nginx's auth_request, Traefik's forwardAuth or Caddy's forward_auth,
// about the request each is serving. The harness trusts a client as a
// proxy when it sends X-Forwarded-For (trustForwardedFor), as Caddy trusts
// an address in trusted_proxies.

// verify asks s about a request, with header pairs, as a proxy would.
func verify(t *testing.T, s *testSite, query string, header ...string) reply {
	t.Helper()
	return sendRaw(t, http.MethodGet, s.url("/api/auth/verify"+query), "", header...)
}

// asProxy are the headers of a trusted proxy asking about method on
// https://host plus uri, Caddy's and Traefik's way.
func asProxy(method, host, uri string, more ...string) []string {
	return append([]string{"X-Forwarded-For", "203.0.113.7", "X-Forwarded-Method", method,
		"X-Forwarded-Host", host, "X-Forwarded-Uri", uri, "X-Forwarded-Proto", "https"}, more...)
}

// ssoSite is a site under cookie_domain example.com that signs browsers in
// at the portal https://auth.example.com/login, with more lines of its
// pg_session block, and trusts a client sending X-Forwarded-For as a proxy.
func ssoSite(t *testing.T, db *testDB, more string) *testSite {
	t.Helper()
	return startSite(t, siteOptions{db: db.url, trustForwardedFor: true,
		handler: "cookie_domain example.com\n\tlogin_url https://auth.example.com/login\n\t" + more})
}

// A live session passes with its identity in the answer's headers and
// nothing else: no body, no token, no cookie, nothing cached.
func TestVerifyAnswersWithTheIdentityOfTheSession(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	bob := db.addUser(t, "bob", "correct horse battery")
	db.joinGroups(t, "alice", "staff", "ops")
	s := startSite(t, siteOptions{db: db.url, trustForwardedFor: true})
	token, _ := db.sessionInDB(t, alice)
	bobs, _ := db.sessionInDB(t, bob)

	for range 2 { // from the database, then from memory
		resp := verify(t, s, "", asProxy(http.MethodGet, "app.example.com", "/docs/x",
			"Cookie", cookieHeader(token), "X-Auth-Username", "admin", "X-Auth-Groups", "admins")...)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		assert.Empty(t, resp.body)
		assert.Equal(t, []string{string(alice.ID)}, resp.Header.Values("X-Auth-User-Id"))
		assert.Equal(t, []string{"alice"}, resp.Header.Values("X-Auth-Username"), "the session's, never the client's")
		assert.Equal(t, []string{"ops,staff"}, resp.Header.Values("X-Auth-Groups"))
		assert.Equal(t, []string{"password"}, resp.Header.Values("X-Auth-Method"))
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		assert.Empty(t, resp.Header.Values("Set-Cookie"))
		for name, values := range resp.Header {
			for _, v := range values {
				assert.NotContains(t, v, token, "header %s", name)
			}
		}
	}
	resp := verify(t, s, "", asProxy(http.MethodGet, "app.example.com", "/", "Cookie", cookieHeader(bobs), "X-Auth-Groups", "admins")...)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Equal(t, "bob", resp.Header.Get("X-Auth-Username"))
	_, sent := resp.Header["X-Auth-Groups"]
	assert.False(t, sent, "a user in no group: no X-Auth-Groups, whatever the client sent")
	assert.Equal(t, http.StatusOK, sendRaw(t, http.MethodHead, s.url("/api/auth/verify"), "", "Cookie", cookieHeader(token)).StatusCode)
}

// A browser without a session is sent to the portal's login page, which
// sends it back to the address it asked for once signed in; for nginx,
// whose auth_request passes no redirect, the address comes as a 401's
// Location. A script gets the gate's 401.
func TestVerifySendsABrowserToThePortal(t *testing.T) {
	t.Parallel()
	s := ssoSite(t, newTestDB(t), "")
	const abs = "https://app.example.com/docs/x?page=2"
	login := "https://auth.example.com/login?redirect=" + url.QueryEscape(abs)

	resp := verify(t, s, "", asProxy(http.MethodGet, "App.Example.com", "/docs/x?page=2", "Accept", browserAccept)...)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, login, resp.Header.Get("Location"))

	resp = verify(t, s, "?for=nginx", asProxy(http.MethodGet, "app.example.com", "/docs/x?page=2", "Accept", browserAccept)...)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
	assert.Equal(t, login, resp.Header.Get("Location"))

	resp = verify(t, s, "", asProxy(http.MethodGet, "app.example.com", "/docs/x")...)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
	assert.JSONEq(t, `{"error":"Not authenticated"}`, resp.body)
	assert.Empty(t, resp.Header.Get("Location"))
	resp = verify(t, s, "?for=nginx", asProxy(http.MethodGet, "app.example.com", "/docs/x", "Cookie", cookieHeader(randomHex(t, 16)))...)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
	assert.JSONEq(t, `{"error":"Session expired"}`, resp.body)
	assert.Empty(t, resp.Header.Get("Location"), "a script is not redirected, with for=nginx either")
}

// The whole way round: verify sends the browser to the portal, which signs
// it in and sends it back to the address verify gave when that address is
// under cookie_domain, and a host outside it is told that the cookie
// never reaches it; the domain's cookie then passes verify.
func TestThePortalTakesBackTheAddressVerifyGives(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	portal := startSite(t, siteOptions{db: db.url, handler: "cookie_domain example.test"})
	login := siteAt(t, portal, "auth.example.test", "/login")
	s := startSite(t, siteOptions{db: db.url, trustForwardedFor: true,
		handler: "cookie_domain example.test\n\tlogin_url " + login})

	// A host outside the cookie domain is told so, not sent round.
	resp := verify(t, s, "", asProxy(http.MethodGet, "app.elsewhere.io", "/docs/x", "Accept", browserAccept)...)
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, "not under cookie_domain example.test")
	resp = verify(t, s, "?for=nginx", asProxy(http.MethodGet, "app.elsewhere.io", "/docs/x", "Accept", browserAccept)...)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "nginx passes 403 on, and not 421")

	for host, back := range map[string]string{
		"app.example.test": "https://app.example.test/docs/x?page=2",
	} {
		resp := verify(t, s, "", asProxy(http.MethodGet, host, "/docs/x?page=2", "Accept", browserAccept)...)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
		to := parseURL(t, resp.Header.Get("Location"))
		assert.Equal(t, login, to.Scheme+"://"+to.Host+to.Path)
		b := ssoBrowser(t)
		require.Equal(t, http.StatusOK, b.getPage(to.String()).StatusCode, "the portal's login page")
		signedIn := b.postForm(login, url.Values{"username": {"alice"}, "password": {"correct horse battery"},
			"redirect": {to.Query().Get("redirect")}})
		require.Equal(t, http.StatusSeeOther, signedIn.StatusCode, signedIn.body)
		assert.Equal(t, back, signedIn.Header.Get("Location"), "signed in at the portal for %s", host)

		token := webtest.SessionCookie(b.jar, siteAt(t, portal, "app.example.test", "/"), "session")
		require.NotEmpty(t, token, "the domain's cookie")
		resp = verify(t, s, "", asProxy(http.MethodGet, "app.example.test", "/docs/x", "Cookie", cookieHeader(token))...)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		assert.Equal(t, "alice", resp.Header.Get("X-Auth-Username"))
	}
}

// Without login_url the site signs browsers in itself, and says so with
// its own absolute address, since the browser is on the proxy's host.
// nginx's X-Original-URL gives the method's host, path and scheme at once.
func TestVerifyWithoutAPortalSendsToItsOwnLoginPage(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s := startSite(t, siteOptions{db: db.url, trustForwardedFor: true})
	const abs = "https://app.example.com/docs/x?page=2"
	resp := verify(t, s, "?for=nginx", "X-Forwarded-For", "203.0.113.7", "X-Original-URL", abs, "Accept", browserAccept)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
	assert.Equal(t, s.url("/login?redirect="+url.QueryEscape(abs)), resp.Header.Get("Location"))
}

// A change of the client's forwarded headers means nothing from a client
// Caddy does not trust as a proxy: the route decides on its own request.
func TestVerifyIgnoresForwardedHeadersFromAnUntrustedClient(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	bob := db.addUser(t, "bob", "correct horse battery")
	s := ssoSite(t, db, "allow /admin/* user alice\n\tdeny /api/* user alice\n\tallow /* any_user")
	alices, _ := db.sessionInDB(t, alice)
	bobs, _ := db.sessionInDB(t, bob)
	lies := []string{"X-Forwarded-Method", "GET", "X-Forwarded-Host", "evil.example.com", "X-Forwarded-Uri", "/admin/x",
		"X-Original-URL", "https://evil.example.com/admin/x", "X-Forwarded-Proto", "https"}

	assert.Equal(t, http.StatusForbidden, verify(t, s, "", append(lies, "Cookie", cookieHeader(alices))...).StatusCode,
		"the rules apply to /api/auth/verify itself, which alice may not see")
	assert.Equal(t, http.StatusOK, verify(t, s, "", append(lies, "Cookie", cookieHeader(bobs))...).StatusCode,
		"nor does bob reach /admin/x through the headers")
	trusted := append([]string{"X-Forwarded-For", "203.0.113.7"}, lies...)
	assert.Equal(t, http.StatusOK, verify(t, s, "", append(trusted, "Cookie", cookieHeader(alices))...).StatusCode)
	assert.Equal(t, http.StatusForbidden, verify(t, s, "", append(trusted, "Cookie", cookieHeader(bobs))...).StatusCode)

	// The request's own host, 127.0.0.1, is no host of the cookie
	// domain, whatever X-Forwarded-Host says: the browser is told so
	// rather than sent to the portal.
	resp := verify(t, s, "", append(lies, "Accept", browserAccept)...)
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, "reached as 127.0.0.1, which is not under cookie_domain example.com")
}

// What a proxy must send is read strictly: anything else is 400, never a
// 500 and never a guess.
func TestVerifyRefusesMalformedForwardedHeaders(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	s := startSite(t, siteOptions{db: db.url, trustForwardedFor: true})
	for _, tc := range []struct {
		name  string
		query string
		pairs []string
	}{
		{"a method with a space", "", asProxy("GET /", "app.example.com", "/")},
		{"a method with a slash", "", asProxy("G/ET", "app.example.com", "/")},
		{"a URI of another host", "", asProxy("GET", "app.example.com", "//evil.example/x")},
		{"a URI with a backslash first", "", asProxy("GET", "app.example.com", `/\evil.example/x`)},
		{"a URI that is no path", "", asProxy("GET", "app.example.com", "docs/x")},
		{"an absolute URI", "", asProxy("GET", "app.example.com", "https://evil.example/x")},
		{"a URI with a space", "", asProxy("GET", "app.example.com", "/a b")},
		{"a URI with a fragment", "", asProxy("GET", "app.example.com", "/a#b")},
		{"a host with a path", "", asProxy("GET", "evil.example/x", "/")},
		{"a host with user info", "", asProxy("GET", "alice@app.example.com", "/")},
		{"two hosts", "", asProxy("GET", "app.example.com, evil.example", "/")},
		{"a host not in ASCII", "", asProxy("GET", "äpp.example.com", "/")},
		{"a scheme of script", "", asProxy("GET", "app.example.com", "/", "X-Forwarded-Proto", "javascript")},
		{"an original URL of script", "", []string{"X-Forwarded-For", "203.0.113.7", "X-Original-URL", "javascript:alert(1)"}},
		{"an original URL with user info", "", []string{"X-Forwarded-For", "203.0.113.7", "X-Original-URL", "https://alice@evil.example/"}},
		{"an original URL with a query for a path", "", []string{"X-Forwarded-For", "203.0.113.7", "X-Original-URL", "https://app.example.com?x=1"}},
		{"an original URL of another path than X-Forwarded-Uri", "", asProxy("GET", "app.example.com", "/public/x",
			"X-Original-URL", "https://app.example.com/admin/secret")},
		{"an unknown for", "?for=apache", asProxy("GET", "app.example.com", "/")},
		{"for twice", "?for=nginx&for=nginx", asProxy("GET", "app.example.com", "/")},
		{"an unreadable query", "?for=%zz", asProxy("GET", "app.example.com", "/")},
	} {
		for _, accept := range []string{"application/json", browserAccept} {
			resp := verify(t, s, tc.query, append(tc.pairs, "Cookie", cookieHeader(token), "Accept", accept)...)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s, Accept %s: %s", tc.name, accept, resp.body)
			assert.Empty(t, resp.Header.Get("X-Auth-Username"), tc.name)
		}
	}
	twice := webtest.Request(t, http.MethodGet, s.url("/api/auth/verify"), nil, asProxy("GET", "app.example.com", "/")...)
	twice.Header.Add("X-Forwarded-Host", "evil.example")
	twice.Header.Set("Cookie", cookieHeader(token))
	resp, body := webtest.Do(t, attackerClient, twice)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "a header given twice: %s", body)
	assert.Equal(t, http.StatusOK, verify(t, s, "", append(asProxy("", "App.Example.com:8443", "/a?b=c%20d"),
		"Cookie", cookieHeader(token))...).StatusCode, "an empty method is GET, a port and a query are fine")
	assert.Equal(t, http.StatusOK, verify(t, s, "", append(asProxy("GET", "app.example.com", "/a?b=1",
		"X-Original-URL", "https://app.example.com/a?b=1"), "Cookie", cookieHeader(token))...).StatusCode,
		"X-Forwarded-Uri and X-Original-URL that agree")
}
