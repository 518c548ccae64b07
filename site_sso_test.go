package pgsession

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// Single sign-on across subdomains, in process: sites under example.test,
// each an httptest server on 127.0.0.1, reached by name through a browser
// whose resolver sends every *.example.test and *.other.test name there.
// Cookies ignore ports, so a cookie for example.test reaches them all.

// ssoBrowser is a browser that resolves every name to 127.0.0.1.
func ssoBrowser(t *testing.T) *browser {
	tr := newTransport()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}
	t.Cleanup(tr.CloseIdleConnections)
	client, jar := webtest.NewBrowser(t, tr)
	return &browser{t: t, jar: jar, client: client}
}

// startPortalAndDocs starts a portal at auth.example.test and a docs site that signs in
// there, on one database; extra goes into both sites' blocks.
func startPortalAndDocs(t *testing.T, db *testDB, extra string) (portal, docs *testSite) {
	t.Helper()
	portal = startSite(t, siteOptions{db: db.url, handler: "cookie_domain example.test\n" + extra})
	docs = startSite(t, siteOptions{db: db.url, handler: "cookie_domain example.test\nlogin_url " +
		siteAt(t, portal, "auth.example.test", "/login") + "\n" + extra})
	return portal, docs
}

// follow makes browser navigations from rawURL on, following at most five
// redirects, and fails the test on a redirect back to an address already
// visited: a loop. It returns the addresses visited and the last answer.
func (b *browser) follow(rawURL string) ([]string, reply) {
	b.t.Helper()
	chain := []string{rawURL}
	for {
		resp := b.getPage(chain[len(chain)-1])
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			return chain, resp
		}
		next, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		require.NoError(b.t, err)
		for _, seen := range chain {
			require.NotEqual(b.t, seen, next.String(), "a redirect loop: %v", append(chain, next.String()))
		}
		chain = append(chain, next.String())
		require.LessOrEqual(b.t, len(chain)-1, 5, "more than five redirects: %v", chain)
	}
}

func TestSingleSignOnAcrossSubdomains(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	portal, docs := startPortalAndDocs(t, db, "")
	b := ssoBrowser(t)
	page := siteAt(t, docs, "docs.example.test", "/guide/page.html?lang=en")

	resp := b.getPage(page)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	login := siteAt(t, portal, "auth.example.test", "/login?redirect="+url.QueryEscape(page))
	assert.Equal(t, login, resp.Header.Get("Location"), "the portal's login page, with the whole address to come back to")
	resp = b.getPage(login)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.body, `name="redirect" value="`+strings.ReplaceAll(page, "&", "&amp;")+`"`)
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "form-action 'self' example.test:* *.example.test:*",
		"the form may lead back to the sites of the domain")

	resp = b.postForm(siteAt(t, portal, "auth.example.test", "/login"), url.Values{"username": {"alice"},
		"password": {"correct horse battery"}, "redirect": {page}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, page, resp.Header.Get("Location"), "back to the page asked for, on the other site")
	assert.Contains(t, resp.Header.Get("Set-Cookie"), "Domain=example.test")

	resp = b.getPage(page)
	require.Equal(t, http.StatusOK, resp.StatusCode, "signed in on docs without signing in again")
	assert.Equal(t, "hello alice", resp.body)
	resp = b.get(siteAt(t, portal, "auth.example.test", "/api/auth/me"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, db.count(t, "SELECT count(*) FROM pgsession.sessions"), "one session for both sites")

	// The docs site's own login page sends the browser to the portal too.
	resp = b.getPage(siteAt(t, docs, "docs.example.test", "/login?redirect=/x"))
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)

	// Signing out on docs ends the session on the portal, another server.
	resp = b.postForm(siteAt(t, docs, "docs.example.test", "/logout"), nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	for _, c := range resp.Cookies() {
		if c.Name == "session" {
			assert.Equal(t, -1, c.MaxAge)
		}
	}
	assert.Contains(t, strings.Join(resp.Header.Values("Set-Cookie"), "\n"), "Domain=example.test")
	chain, resp := b.follow(siteAt(t, docs, "docs.example.test", resp.Header.Get("Location")))
	assert.Len(t, chain, 2, "docs' signed-out page is the portal's")
	assert.Contains(t, resp.body, "You have been signed out")
	assert.Equal(t, 0, db.count(t, "SELECT count(*) FROM pgsession.sessions"))
	resp = b.get(siteAt(t, portal, "auth.example.test", "/api/auth/me"))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestSingleSignOnKeepsEachSitesRules(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	portal := startSite(t, siteOptions{db: db.url, handler: "cookie_domain example.test"})
	docs := startSite(t, siteOptions{db: db.url, handler: "cookie_domain example.test\nlogin_url " +
		siteAt(t, portal, "auth.example.test", "/login") + "\ndeny /secret/*"})
	b := ssoBrowser(t)
	resp := b.postJSON(siteAt(t, portal, "auth.example.test", "/api/auth/login"),
		map[string]string{"username": "alice", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, http.StatusOK, b.get(siteAt(t, portal, "auth.example.test", "/secret/plan")).StatusCode, "the portal has no rule")
	assert.Equal(t, http.StatusForbidden, b.get(siteAt(t, docs, "docs.example.test", "/secret/plan")).StatusCode, "docs' rule holds")
	assert.Equal(t, http.StatusOK, b.get(siteAt(t, docs, "docs.example.test", "/guide")).StatusCode)
}

func TestSingleSignOnLogoutReachesTheOtherServerAtOnce(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	portal, docs := startPortalAndDocs(t, db, "")
	b := ssoBrowser(t)
	resp := b.postJSON(siteAt(t, portal, "auth.example.test", "/api/auth/login"),
		map[string]string{"username": "alice", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	token := webtest.SessionCookie(b.jar, siteAt(t, docs, "docs.example.test", "/"), "session")
	require.NotEmpty(t, token, "the portal's cookie reaches docs")
	// docs remembers the session, so only the announcement can end it there.
	thief := ssoBrowser(t)
	copied := func() int {
		return thief.get(siteAt(t, docs, "docs.example.test", "/page"), "Cookie", "session="+token).StatusCode
	}
	require.Equal(t, http.StatusOK, copied())
	require.Equal(t, http.StatusOK, copied())

	resp = b.postJSON(siteAt(t, portal, "auth.example.test", "/api/auth/logout"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Eventually(t, func() bool { return copied() == http.StatusUnauthorized }, 5*time.Second, 5*time.Millisecond,
		"a copy of the cookie still works on docs after the logout on the portal")
}

func TestSingleSignOnNeverLoops(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	portal, docs := startPortalAndDocs(t, db, "")
	signIn := func(b *browser) {
		resp := b.postJSON(siteAt(t, portal, "auth.example.test", "/api/auth/login"),
			map[string]string{"username": "alice", "password": "correct horse battery"})
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	misconfigured := func(t *testing.T, resp reply, says string) {
		t.Helper()
		assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
		assert.Contains(t, resp.body, "Sign-in is misconfigured")
		assert.Contains(t, resp.body, says)
	}

	t.Run("a site reached under a host outside cookie_domain", func(t *testing.T) {
		b := ssoBrowser(t)
		_, resp := b.follow(siteAt(t, docs, "docs.other.test", "/page"))
		misconfigured(t, resp, "not under cookie_domain example.test")
		resp = b.postJSON(siteAt(t, docs, "docs.other.test", "/api/auth/login"),
			map[string]string{"username": "alice", "password": "correct horse battery"})
		assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, "no sign-in whose cookie the browser would drop")
		assert.Empty(t, resp.Header.Values("Set-Cookie"))
	})
	t.Run("the portal with the snippet that names it", func(t *testing.T) {
		ln := listen(t)
		login := "http://auth.example.test:" + portOfListener(ln) + "/login"
		self := startSite(t, siteOptions{db: db.url, listener: ln, handler: "cookie_domain example.test\nlogin_url " + login})
		b := ssoBrowser(t)
		chain, resp := b.follow(siteAt(t, self, "auth.example.test", "/page"))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, []string{siteAt(t, self, "auth.example.test", "/page"), login + "?redirect=%2Fpage"}, chain,
			"one redirect, to its own login page")
		resp = b.postForm(login, url.Values{"username": {"alice"}, "password": {"correct horse battery"}, "redirect": {"/page"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		_, resp = b.follow(siteAt(t, self, "auth.example.test", "/page"))
		assert.Equal(t, "hello alice", resp.body)
	})
	t.Run("login_url names the site with another path than its login_path", func(t *testing.T) {
		ln := listen(t)
		odd := startSite(t, siteOptions{db: db.url, listener: ln, handler: "cookie_domain example.test\nlogin_path /signin\n" +
			"login_url http://auth.example.test:" + portOfListener(ln) + "/login"})
		_, resp := ssoBrowser(t).follow(siteAt(t, odd, "auth.example.test", "/page"))
		misconfigured(t, resp, "set login_path /login")
	})
	t.Run("a signed-in browser the site does not recognise", func(t *testing.T) {
		b := ssoBrowser(t)
		signIn(b)
		target := siteAt(t, docs, "docs.example.test", "/page")
		login := siteAt(t, portal, "auth.example.test", "/login?redirect="+url.QueryEscape(target))
		resp := b.getPage(login)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a signed-in browser is sent back")
		resp = b.getPage(login)
		misconfigured(t, resp, "did not receive the sign-in")
	})
	t.Run("a host-only cookie left beside the domain cookie", func(t *testing.T) {
		b := ssoBrowser(t)
		// Older, so the browser sends it first, as the caddy-security
		// collision had it.
		u, _ := url.Parse(siteAt(t, docs, "docs.example.test", "/"))
		b.jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: "stale-host-only-cookie-from-before", Path: "/"}})
		signIn(b)
		cookies := b.jar.Cookies(u)
		require.Len(t, cookies, 2, "the browser sends both")
		require.Equal(t, "stale-host-only-cookie-from-before", cookies[0].Value, "the stale one first")
		chain, resp := b.follow(siteAt(t, docs, "docs.example.test", "/page"))
		assert.Equal(t, http.StatusOK, resp.StatusCode, "the live cookie wins: %v", chain)
		assert.Equal(t, "hello alice", resp.body)
		live := b.jar.Cookies(u)[1].Value
		resp = b.postJSON(siteAt(t, docs, "docs.example.test", "/api/auth/logout"), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, http.StatusUnauthorized, ssoBrowser(t).get(siteAt(t, docs, "docs.example.test", "/page"),
			"Cookie", "session="+live).StatusCode, "signing out ends the live session too, not only the stale one")
	})
	t.Run("a cookie of an older cookie_name, an expired session", func(t *testing.T) {
		b := ssoBrowser(t)
		u, _ := url.Parse(siteAt(t, docs, "docs.example.test", "/"))
		b.jar.SetCookies(u, []*http.Cookie{{Name: "old_session", Value: "from-before", Path: "/", Domain: "example.test"},
			{Name: "session", Value: "no-such-session-no-such-session-no-such-sess", Path: "/", Domain: "example.test"}})
		chain, resp := b.follow(siteAt(t, docs, "docs.example.test", "/page"))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Len(t, chain, 2, "one redirect, to the portal's login page: %v", chain)
		assert.Contains(t, resp.body, `name="password"`)
	})
}

func TestSingleSignOnMisconfiguredSchemeGetsAPage(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	site := startSite(t, siteOptions{db: db.url, handler: "cookie_domain example.test\nlogin_url https://auth.example.test/login"})
	b := ssoBrowser(t)
	chain, resp := b.follow(siteAt(t, site, "docs.example.test", "/page"))
	assert.Len(t, chain, 1)
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	assert.Contains(t, resp.body, "served over plain HTTP")
}

func TestSingleSignOnOpenRedirectsLandOnThePortalsHome(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	portal, docs := startPortalAndDocs(t, db, "home /welcome")
	good := siteAt(t, docs, "docs.example.test", "/page")
	for _, target := range []string{
		"https://evil.test/", "//evil.test", "https://auth.example.test.evil.test/", "https://example.test@evil.test/",
		`https://evil.test\@docs.example.test`, "https://evil.test#.example.test", "https://evil.test?.example.test",
		`/\evil.test`, "javascript:alert(1)", "https:evil.test", "http://docs.example.test\t.evil.test/",
		"http://docs.example.test\n/", "HTTP://docs.example.test/", "http://127.0.0.1/", "http://evil.test%2f.example.test/",
	} {
		b := ssoBrowser(t)
		resp := b.postForm(siteAt(t, portal, "auth.example.test", "/login"), url.Values{"username": {"alice"},
			"password": {"correct horse battery"}, "redirect": {target}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, target)
		assert.Equal(t, "/welcome", resp.Header.Get("Location"), "redirect %q", target)
	}
	b := ssoBrowser(t)
	resp := b.postForm(siteAt(t, portal, "auth.example.test", "/login"), url.Values{"username": {"alice"},
		"password": {"correct horse battery"}, "redirect": {good}})
	assert.Equal(t, good, resp.Header.Get("Location"), "an address on the domain is honoured")
}

// listen reserves a port on 127.0.0.1 for a site that names its own address.
func listen(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}

func portOfListener(ln net.Listener) string {
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
