package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// Single sign-on across subdomains, end to end (see sso_harness_test.go
// for the sites): one sign-in at the portal for every site, one sign-out
// for all of them, no redirect loop whatever is misconfigured, no open
// redirect, and no identity header a client sent ever reaching an upstream.

const ssoPassword = "correct horse battery"

// domainCookie puts a session cookie for every site under example.test in
// b's jar, as the portal sets it.
func (w *ssoWorld) domainCookie(b *browser, name, token string) {
	u, _ := url.Parse(w.url("auth", "/"))
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: token, Path: "/", Domain: "example.test"}})
}

// hostCookie puts a session cookie of host.example.test only in b's jar,
// as a config without cookie_domain set it.
func (w *ssoWorld) hostCookie(b *browser, host, name, token string) {
	u, _ := url.Parse(w.url(host, "/"))
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: token, Path: "/"}})
}

// signedInBrowser is a browser holding the portal's cookie for a new session of u.
func (w *ssoWorld) signedInBrowser(t *testing.T, u *store.User) (*browser, string) {
	token, _ := sessionInDB(t, w.db, u)
	b := newSSOBrowser(t)
	w.domainCookie(b, "session", token)
	return b, token
}

// endedSession is the token of a session of u that has been signed out.
func (w *ssoWorld) endedSession(u *store.User) string {
	token, _ := sessionInDB(w.t, w.db, u)
	require.NoError(w.t, w.db.store.DeleteSession(context.Background(), token))
	return token
}

// signOut posts the sign-out form of site host, as its page would.
func (w *ssoWorld) signOut(b *browser, host string) {
	b.t.Helper()
	req := webtest.FormRequest(b.t, w.url(host, "/logout"), url.Values{})
	req.Header.Set("Origin", w.url(host, ""))
	out := b.do(req)
	require.Less(b.t, out.StatusCode, 400, out.body)
}

// refusedSoon asserts that target refuses a script sending the session
// cookie token within the time a revocation takes to reach every server.
func refusedSoon(t *testing.T, target, token, why string) {
	t.Helper()
	assert.Eventually(t, func() bool {
		resp, _ := webtest.SendRaw(t, ssoBare(), http.MethodGet, target, "", "Cookie", "session="+token)
		return resp.StatusCode == http.StatusUnauthorized
	}, 5*time.Second, 10*time.Millisecond, "%s: %s", target, why)
}

func isLoginPage(body string) bool { return strings.Contains(body, `name="password"`) }

// Each misconfiguration of single sign-on ends, within a few redirects and
// without a cycle, on a page: the login page, or one that says what is
// misconfigured.
func TestSSOMisconfigurationsNeverLoop(t *testing.T) {
	w := startSSO(t)
	alice := w.db.addUser(t, "alice", ssoPassword)

	misconfigured := func(t *testing.T, chain []hop, page response, says string) {
		t.Helper()
		assert.Equal(t, http.StatusMisdirectedRequest, page.StatusCode, "%v: %s", chain, page.body)
		assert.Contains(t, page.body, "Sign-in is misconfigured")
		assert.Contains(t, page.body, says)
	}
	// oneRedirectToLogin: the site sends the browser to the portal once, and
	// the portal shows its login page.
	oneRedirectToLogin := func(t *testing.T, chain []hop, page response, from string) {
		t.Helper()
		require.Len(t, chain, 2, "%v", chain)
		assert.Equal(t, w.loginURL()+"?redirect="+url.QueryEscape(from), chain[0].location)
		assert.Equal(t, http.StatusOK, page.StatusCode)
		assert.True(t, isLoginPage(page.body), "%v ends on the login page: %s", chain, page.body)
	}

	t.Run("a site reached under a host outside cookie_domain", func(t *testing.T) {
		b := newSSOBrowser(t)
		chain, page := w.follow(b, fmt.Sprintf("http://docs.other.test:%d/page", w.port))
		require.Len(t, chain, 1, "no redirect to a portal whose cookie never comes back: %v", chain)
		misconfigured(t, chain, page, "not under cookie_domain example.test")
	})
	t.Run("a site behind nginx reached under a host outside cookie_domain", func(t *testing.T) {
		// nginx serves any name on its port. The check refuses to send the
		// browser to a portal that could not send it back signed in: 403,
		// which nginx passes on (it turns anything but 2xx, 401 and 403
		// into 500).
		outside := strings.Replace(w.app("/page"), "app.example.test", "app.other.test", 1)
		chain, _ := w.follow(newSSOBrowser(t), outside)
		require.Len(t, chain, 1, "%v", chain)
		assert.Equal(t, http.StatusForbidden, chain[0].status, "%v", chain)
	})
	t.Run("a plain HTTP site whose login_url is https", func(t *testing.T) {
		chain, page := w.follow(newSSOBrowser(t), w.url("plain", "/page"))
		require.Len(t, chain, 1, "%v", chain)
		misconfigured(t, chain, page, "plain HTTP")
	})
	t.Run("a site named as its own portal serves the login", func(t *testing.T) {
		chain, page := w.follow(newSSOBrowser(t), w.url("auth", "/page"))
		require.Len(t, chain, 2, "%v", chain)
		assert.Equal(t, "/login?redirect=%2Fpage", chain[0].location, "the portal signs in on its own login page")
		assert.True(t, isLoginPage(page.body), page.body)
		login, _ := w.follow(newSSOBrowser(t), w.loginURL())
		assert.Equal(t, []hop{{url: w.loginURL(), status: http.StatusOK}}, login)
	})
	t.Run("a portal whose login_url is not its login page", func(t *testing.T) {
		chain, page := w.follow(newSSOBrowser(t), w.url("misnamed", "/page"))
		require.Len(t, chain, 1, "%v", chain)
		misconfigured(t, chain, page, "set login_path /sign-in")
	})
	t.Run("a site that never receives the portal's cookie", func(t *testing.T) {
		// legacy's cookie_name is not the portal's: the portal sees a
		// signed-in browser and sends it back, once, and the second time
		// says what is wrong.
		b, _ := w.signedInBrowser(t, alice)
		chain, page := w.follow(b, w.url("legacy", "/page"))
		require.Len(t, chain, 4, "%v", chain)
		misconfigured(t, chain, page, "legacy.example.test")
		assert.Contains(t, page.body, "did not receive the sign-in")
	})
	t.Run("a stale cookie from an older cookie_name", func(t *testing.T) {
		b := newSSOBrowser(t)
		w.domainCookie(b, "pgsession", w.endedSession(alice))
		chain, page := w.follow(b, w.url("docs", "/page"))
		oneRedirectToLogin(t, chain, page, w.url("docs", "/page"))

		live, _ := w.signedInBrowser(t, alice)
		w.domainCookie(live, "pgsession", w.endedSession(alice))
		chain, page = w.follow(live, w.url("docs", "/old-name"))
		require.Len(t, chain, 1, "%v", chain)
		assert.Equal(t, `upstream /old-name for "alice"`, page.body)
	})
	t.Run("a host-only cookie left beside the domain cookie", func(t *testing.T) {
		// The stale host-only cookie goes in first, so the browser sends it
		// first, as one from before cookie_domain would be.
		for _, host := range []string{"docs", "auth"} {
			b := newSSOBrowser(t)
			w.hostCookie(b, host, "session", w.endedSession(alice))
			token, _ := sessionInDB(t, w.db, alice)
			w.domainCookie(b, "session", token)
			u, _ := url.Parse(w.url(host, "/"))
			sent := b.jar.Cookies(u)
			require.Len(t, sent, 2)
			require.NotEqual(t, token, sent[0].Value, "the stale cookie is sent first")

			chain, page := w.follow(b, w.url(host, "/collision"))
			require.Len(t, chain, 1, "%s: the live cookie wins: %v", host, chain)
			assert.Equal(t, http.StatusOK, page.StatusCode)
			assert.Contains(t, page.body, "alice", host)
		}
	})
	t.Run("a signed-out session", func(t *testing.T) {
		b := newSSOBrowser(t)
		w.domainCookie(b, "session", w.endedSession(alice))
		chain, page := w.follow(b, w.url("docs", "/page"))
		oneRedirectToLogin(t, chain, page, w.url("docs", "/page"))
	})
	t.Run("an expired session", func(t *testing.T) {
		b, token := w.signedInBrowser(t, alice)
		require.Equal(t, http.StatusOK, b.getPage(w.url("docs", "/before")).StatusCode)
		_, err := w.db.pool.Exec(context.Background(),
			"UPDATE pgsession.sessions SET expires_at = now() - interval '1 second' WHERE id = encode(sha256($1::bytea), 'hex')", token)
		require.NoError(t, err)
		// The database announces the shortened session; memory forgets it
		// within the usual revocation latency.
		refusedSoon(t, w.url("docs", "/probe"), token, "the expired session still works")
		chain, page := w.follow(b, w.url("docs", "/page"))
		oneRedirectToLogin(t, chain, page, w.url("docs", "/page"))
	})
}

// openRedirects are return addresses that lead off the domain, or that
// some browser or parser reads as leading off it; none may be followed.
// Each is posted with the login form.
var openRedirects = []string{
	"https://evil.test/",
	"//evil.test",
	"https://auth.example.test.evil.test/",
	"https://example.test@evil.test/",
	`https://evil.test\@docs.example.test`,
	"https://evil.test#.example.test",
	"https://evil.test?.example.test",
	`/\evil.test`,
	"javascript:alert(1)",
	"https:evil.test",
	"/\t/evil.test", // browsers drop tabs and newlines from an address: //evil.test
	"https://evil.test\n.example.test",
	"https://docs.example.test\r\nLocation: https://evil.test",
}

// moreOpenRedirects are tried only on the login page, which reads them with
// the same rule as the login form: the posts of openRedirects show that.
var moreOpenRedirects = []string{
	"///evil.test",
	`\\evil.test`,
	"JavaScript://docs.example.test/%0aalert(1)",
	"data:text/html,<script>alert(1)</script>",
	"https:/evil.test",
	"HTTPS://evil.test",
	"https://evil.test%2f.example.test/",
	"https://evil.test%23.example.test/",
	"https://evil.test./",
	"https://example.test.evil.test",
	"https://docs.example.test:443@evil.test",
	"https://[::1]/",
	"https://127.0.0.1/",
	"\t//evil.test",
	"/\n/evil.test",
	"ht\ttps://evil.test",
	"https://evil.test\t.example.test",
}

// A sign-in asked to send the browser on to an address off the cookie
// domain sends it to the portal's home instead: the login form posted with
// it, the form the login page shows for it, and the login page of a
// browser signed in already. An address of a site under the domain is
// followed.
func TestSSOOpenRedirectsLandOnPortalHome(t *testing.T) {
	w := startSSO(t)
	w.db.addUser(t, "alice", ssoPassword)
	b := newSSOBrowser(t)
	login := func(redirect string) response {
		req := webtest.FormRequest(t, w.loginURL(), url.Values{"username": {"alice"}, "password": {ssoPassword}, "redirect": {redirect}})
		req.Header.Set("Origin", w.url("auth", ""))
		return b.do(req)
	}
	for _, target := range openRedirects {
		resp := login(target)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "%q: %s", target, resp.body)
		assert.Equal(t, "/", resp.Header.Get("Location"), "the login form with redirect %q", target)
	}
	stranger := newSSOBrowser(t)
	for _, target := range append(openRedirects, moreOpenRedirects...) {
		page := stranger.getPage(w.loginURL() + "?redirect=" + url.QueryEscape(target))
		m := formRedirect.FindStringSubmatch(page.body)
		if assert.NotNil(t, m, "%q: %s", target, page.body) {
			assert.Equal(t, "/", m[1], "the login form shown for redirect %q", target)
		}
		resp := b.getPage(w.loginURL() + "?redirect=" + url.QueryEscape(target))
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "%q: %s", target, resp.body)
		assert.Equal(t, "/", resp.Header.Get("Location"), "the login page of a signed-in browser with redirect %q", target)
	}
	home := b.getPage(w.url("auth", "/"))
	assert.Equal(t, "portal home of alice", home.body, "home is the portal's")

	good := w.url("docs", "/page?x=1#top")
	resp := login(good)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, good, resp.Header.Get("Location"), "a page of a site under the domain is where the browser goes")
	resp = b.getPage(w.loginURL() + "?redirect=" + url.QueryEscape(w.url("legacy", "/other")))
	assert.Equal(t, w.url("legacy", "/other"), resp.Header.Get("Location"))
}

// Signing out on one site ends the session on every site, those behind
// forward_auth and auth_request too: a copy of the cookie is refused
// everywhere within the time a revocation takes, and the browser is sent
// to sign in again.
func TestSSOSignOutOnOneSiteEndsEverySite(t *testing.T) {
	w := startSSO(t)
	w.db.addUser(t, "alice", ssoPassword)
	b := newSSOBrowser(t)
	require.Equal(t, http.StatusOK, w.signIn(b, w.url("docs", "/page"), "alice", ssoPassword).StatusCode)
	token := webtest.SessionCookie(b.jar, w.url("docs", "/"), "session")
	require.Equal(t, "portal home of alice", b.getPage(w.url("auth", "/")).body)

	w.signOut(b, "docs")
	for _, target := range []string{w.url("auth", "/"), w.url("docs", "/after"), w.wiki("/after"), w.app("/after")} {
		refusedSoon(t, target, token, "still takes the signed-out session")
	}
	for _, site := range w.gatedSites() {
		page := b.getPage(site.url("/again"))
		assert.Equal(t, site.redirect, page.StatusCode, "%s after signing out", site.name)
		assert.True(t, strings.HasPrefix(page.Header.Get("Location"), w.loginURL()+"?redirect="), page.Header.Get("Location"))
	}
}

// Signing out ends the live session even when a stale host-only cookie of
// the same name, left from before cookie_domain, comes first in the
// request: the browser loses both cookies, and the session they stood for
// must not go on working for whoever holds a copy of it.
func TestSSOSignOutWithStaleHostOnlyCookieEndsLiveSession(t *testing.T) {
	w := startSSO(t)
	alice := w.db.addUser(t, "alice", ssoPassword)
	b := newSSOBrowser(t)
	w.hostCookie(b, "docs", "session", w.endedSession(alice))
	token, _ := sessionInDB(t, w.db, alice)
	w.domainCookie(b, "session", token)
	require.Equal(t, `upstream /before for "alice"`, b.getPage(w.url("docs", "/before")).body)

	w.signOut(b, "docs")
	assert.Empty(t, webtest.SessionCookie(b.jar, w.url("docs", "/"), "session"), "the browser keeps no session cookie")
	refusedSoon(t, w.url("docs", "/after"), token, "the session signed out is still live")
}
