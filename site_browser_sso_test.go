package pgsession

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/chromium"
)

// Single sign-on in a real Chromium, across two host names: a portal at
// auth.example.test and a docs site at docs.example.test, two servers on
// 127.0.0.1 with one database, which the browser reaches by name through
// --host-resolver-rules. Sites on one host name share cookies whatever
// their ports, so only different names show that the cookie's Domain, the
// portal's redirects and the login page's form-action work between sites.

const (
	ssoDomain     = "example.test"
	ssoPortalHost = "auth." + ssoDomain
	ssoDocsHost   = "docs." + ssoDomain
	// cspRefusal is in every message with which Chromium reports a
	// Content Security Policy's refusal on the console.
	cspRefusal = "Content Security Policy"
)

func TestBrowserSSO(t *testing.T) {
	t.Parallel()
	browser := chromium.Start(t, chromium.HostResolverRules("MAP *."+ssoDomain+" 127.0.0.1"))
	t.Run("SignInOnThePortalReachesDocsAndSignOutEndsBoth", func(t *testing.T) {
		t.Parallel()
		browserSSOSignInAndOut(t, browser)
	})
}

// ssoSites are a portal and a docs site sharing a database and a cookie
// domain, each addressed by its own host name.
type ssoSites struct {
	db                 *testDB
	portal, docs       *testSite
	portalURL, docsURL func(path string) string
}

// startSSOSites starts the portal, then the docs site, whose login_url
// names the portal's port, with a user alice in their database.
func startSSOSites(t *testing.T) ssoSites {
	t.Helper()
	db := newTestDB(t)
	db.addUser(t, "alice", alicePassword)
	s := ssoSites{db: db}
	s.portal = startSite(t, siteOptions{db: db.url, handler: "cookie_domain " + ssoDomain + "\nsecure off"})
	s.portalURL = func(path string) string { return siteAt(t, s.portal, ssoPortalHost, path) }
	s.docs = startSite(t, siteOptions{db: db.url, handler: "cookie_domain " + ssoDomain + "\nlogin_url " + s.portalURL("/login")})
	s.docsURL = func(path string) string { return siteAt(t, s.docs, ssoDocsHost, path) }
	return s
}

func browserSSOSignInAndOut(t *testing.T, browser *chromium.Browser) {
	s := startSSOSites(t)
	tab := browser.NewTab(t)
	console := tab.WatchConsole()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the console showed:\n%s", consoleText(console))
		}
	})

	// A docs page, signed out, leads to the portal's login page, which will
	// send the browser back to that page.
	openLoginPage(tab, s.docsURL("/page"))
	login := parseURL(t, location(tab))
	assert.Equal(t, ssoPortalHost, login.Hostname(), "the docs site sends the browser to the portal")
	assert.Equal(t, "/login", login.Path)
	assert.Equal(t, s.docsURL("/page"), login.Query().Get("redirect"), "with the docs page to come back to")
	assert.Contains(t, text(tab, "h1"), "Sign in")

	// Signing in on the portal lands on the docs page, through a redirect
	// after the form that the login page's form-action must allow.
	signIn(tab, "alice", alicePassword)
	waitForPage(t, tab, "docs page, signed in", s.docsURL("/page"), "hello alice")
	assert.Equal(t, 1, s.db.count(t, `SELECT count(*) FROM pgsession.sessions`), "one session, started on the portal")

	// One cookie, for the whole domain: the browser sends the same one to
	// both host names, and no page script can read it.
	docsCookie, portalCookie := sessionCookieAt(tab, s.docsURL("/")), sessionCookieAt(tab, s.portalURL("/"))
	require.NotNil(t, docsCookie, "the browser sends a session cookie to %s", ssoDocsHost)
	require.NotNil(t, portalCookie, "the browser sends a session cookie to %s", ssoPortalHost)
	assert.Equal(t, "."+ssoDomain, docsCookie.Domain, "a cookie of the domain, not of the host that set it")
	assert.Equal(t, portalCookie.Value, docsCookie.Value, "the same cookie on both sites")
	assert.True(t, docsCookie.HTTPOnly)
	assert.NotContains(t, chromium.Run(tab, "read document.cookie", chromedp.Evaluate[string](`document.cookie`)), "session=")

	// The portal's own pages know the person without another sign-in: its
	// account page, and a page behind its gate, which its memory now holds.
	tab.Do("open the portal's account page", chromedp.Navigate(s.portalURL("/account")),
		chromedp.WaitVisible(chromedp.CSS(passwordButton)))
	assert.Equal(t, s.portalURL("/account"), location(tab), "no sign-in on the way")
	assert.Contains(t, text(tab, "h1"), "alice")
	tab.Do("open the page behind the portal's gate", chromedp.Navigate(s.portalURL("/")))
	waitForPage(t, tab, "portal's page, signed in", s.portalURL("/"), "hello alice")

	// Signing out with the button of the docs site's sign-out page ends at
	// the portal's login page.
	tab.Do("sign out on the docs site",
		chromedp.Navigate(s.docsURL("/logout")),
		chromedp.WaitVisible(chromedp.CSS(accountSignOut)),
		chromedp.Click(chromedp.CSS(accountSignOut)),
		chromedp.WaitVisible(chromedp.CSS(passwordField)),
	)
	assert.Equal(t, ssoPortalHost, parseURL(t, location(tab)).Hostname(), "signed out, the browser is on the portal's login page")
	assert.Contains(t, text(tab, "body"), "You have been signed out", "the portal says so, as a single site does")
	assert.Equal(t, 0, s.db.count(t, `SELECT count(*) FROM pgsession.sessions`), "the session has ended")
	assert.Nil(t, sessionCookieAt(tab, s.docsURL("/")), "the browser holds no session cookie")

	// Both sites ask for a sign-in again.
	tab.Do("open the portal's account page, signed out", chromedp.Navigate(s.portalURL("/account")),
		chromedp.WaitVisible(chromedp.CSS(passwordField)))
	assert.Equal(t, "/login", urlPath(t, location(tab)))
	openLoginPage(tab, s.docsURL("/page"))
	assert.Equal(t, ssoPortalHost, parseURL(t, location(tab)).Hostname(), "the docs site sends the browser to the portal again")

	// The session itself ended, for both servers, not only the browser's
	// cookie: the cookie put back opens neither site, the portal's gate
	// included once the docs site's sign-out has reached its memory.
	tab.Do("put the cookie back", putCookieBack(docsCookie))
	openLoginPage(tab, s.docsURL("/page"))
	signInAsked := chromedp.Evaluate[bool](`document.querySelector(` + strconv.Quote(passwordField) + `) !== null`)
	require.Eventually(t, func() bool {
		// Try, not Do: a step that fails here must not end the test from
		// the goroutine Eventually runs this in.
		_, err := chromium.Try(tab, chromedp.Steps(putCookieBack(docsCookie), chromedp.Navigate(s.portalURL("/"))))
		asked, _ := chromium.Try(tab, signInAsked)
		return err == nil && asked
	}, chromium.StepTimeout, 50*time.Millisecond, "the ended session still opens the portal's gate")

	for _, m := range console.Messages() {
		assert.NotContains(t, m.Text, cspRefusal, "the console shows a Content Security Policy refusal")
	}
	consoleHearsCSP(t, tab, console)
}

// consoleHearsCSP makes the login page shown break its own policy, loading
// an image from another site, and waits for the console to say so: proof
// that a refusal of the form's redirect would have been seen.
func consoleHearsCSP(t *testing.T, tab *chromium.Tab, console *chromium.Console) {
	t.Helper()
	elsewhere := strconv.Quote("http://elsewhere." + ssoDomain + "/pixel.png")
	chromium.Run(tab, "load an image the policy forbids", chromedp.Evaluate[bool](`(new Image().src = `+elsewhere+`, true)`))
	require.Eventually(t, func() bool {
		return strings.Contains(consoleText(console), cspRefusal)
	}, chromium.StepTimeout, 20*time.Millisecond, "the console never reported the policy's refusal of an image")
}

// waitForPage waits until the tab shows rawURL with body as its whole text,
// as the sites' respond handler answers.
func waitForPage(t *testing.T, tab *chromium.Tab, what, rawURL, body string) {
	t.Helper()
	waitUntil(t, tab, what, `location.href === `+strconv.Quote(rawURL)+` && document.readyState === "complete" && `+
		`document.body.innerText.trim() === `+strconv.Quote(body))
}

// putCookieBack stores c in the tab's browser context again, as a copy of
// the cookie taken before a sign-out would be.
func putCookieBack(c *network.Cookie) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		httpOnly := c.HTTPOnly
		_, err := cdp.Call(ctx, t, network.SetCookie, network.SetCookieParams{
			Name: c.Name, Value: c.Value, Domain: c.Domain, Path: c.Path, HTTPOnly: &httpOnly, SameSite: c.SameSite,
		})
		return err
	})
}

// consoleText is every message the console has shown so far, one a line.
func consoleText(c *chromium.Console) string {
	var b strings.Builder
	for _, m := range c.Messages() {
		b.WriteString(m.String() + "\n")
	}
	return b.String()
}
