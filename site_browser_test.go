package pgsession

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/chromium"
)

// The login and account pages in a real, headless Chromium: what a person
// sees and does, typing, clicking, following redirects, keeping cookies and
// going back, against a site of the harness in site_test.go. One browser
// serves every subtest; each tab is in a browser context of its own, so no
// cookie leaks from one test into another.

// Elements are found by what the pages are for (a form's fields, its action,
// a button's role), not by their wording or layout, which may change.
const (
	usernameField  = `input[name="username"]`
	passwordField  = `input[name="password"]`
	signInButton   = `form:has(input[name="password"]) button[type="submit"]`
	rememberBox    = `input[name="remember"]`
	errorMessage   = `[role="alert"]`
	noticeMessage  = `[role="status"]`
	revokeButton   = `form:has(input[name="action"][value="revoke"]) button[type="submit"]`
	passwordButton = `form:has(input[name="action"][value="password"]) button[type="submit"]`
	accountSignOut = `form[action="/logout"] button[type="submit"]`
	protectedText  = `#protected`
	pageSignOut    = `#sign-out`
)

const (
	alicePassword = "correct horse battery"
	docsPage      = "/docs/page.html?tab=2"
)

// protectedPage is a page of the site behind the gate: a heading and the
// tab its query string asks for, as the page's script shows it.
const protectedPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Handbook</title></head>
<body>
<h1 id="protected">The team handbook</h1>
<p id="tab"></p>
<form method="post" action="/logout"><button id="sign-out">Sign out</button></form>
<script>document.getElementById("tab").textContent = "Showing tab " + new URLSearchParams(location.search).get("tab");</script>
</body></html>
`

// startDocs starts a site serving protectedPage at /docs/page.html behind
// the gate, with handler as its pg_session block, and a user alice.
func startDocs(t *testing.T, handler string) *testSite {
	t.Helper()
	db := newTestDB(t)
	db.addUser(t, "alice", alicePassword)
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "docs"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "docs", "page.html"), []byte(protectedPage), 0o644))
	return startSite(t, siteOptions{db: db.url, handler: handler, next: fileServer(t, root)})
}

func TestBrowser(t *testing.T) {
	t.Parallel()
	browser := chromium.Start(t)
	for _, tc := range []struct {
		name string
		test func(*testing.T, *chromium.Browser)
	}{
		{"SignInReturnsToThePageWithItsQuery", browserSignInReturnsToThePageWithItsQuery},
		{"WrongPasswordShowsTheErrorAndKeepsTheName", browserWrongPasswordShowsTheErrorAndKeepsTheName},
		{"KeepMeSignedInGivesAPersistentCookie", browserKeepMeSignedInGivesAPersistentCookie},
		{"AccountPageSignsOutAnotherBrowser", browserAccountPageSignsOutAnotherBrowser},
		{"PasswordChangeOnTheAccountPage", browserPasswordChangeOnTheAccountPage},
		{"BackAfterSignOutDoesNotShowTheProtectedPage", browserBackAfterSignOutDoesNotShowTheProtectedPage},
		{"BackAfterSignOutOnTheProtectedPage", browserBackAfterSignOutOnTheProtectedPage},
		{"KeyboardOnlySignIn", browserKeyboardOnlySignIn},
		{"PagesInLightAndDark", browserPagesInLightAndDark},
		{"LoginPageFitsAPhone", browserLoginPageFitsAPhone},
		{"DemoSiteFitsAPhone", browserDemoSiteFitsAPhone},
		{"TwoStepSignIn", browserTwoStepSignIn},
		{"APITokenOnTheAccountPage", browserAPITokenOnTheAccountPage},
		{"ForbiddenPageSignsOut", browserForbiddenPageSignsOut},
		{"StepUpWithTOTP", browserStepUpWithTOTP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, browser)
		})
	}
}

func browserSignInReturnsToThePageWithItsQuery(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	tab := browser.NewTab(t)

	openLoginPage(tab, site.url(docsPage))
	assert.Equal(t, "/login", urlPath(t, location(tab)), "a visitor without a session is sent to the login page")
	assert.False(t, present(tab, protectedText))

	signIn(tab, "alice", alicePassword)
	tab.Do("wait for the page asked for", chromedp.WaitVisible(chromedp.CSS(protectedText)))
	assert.Equal(t, site.url(docsPage), location(tab), "the person lands on the page asked for, query string and all")
	assert.Equal(t, "Showing tab 2", text(tab, "#tab"))
}

func browserWrongPasswordShowsTheErrorAndKeepsTheName(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	tab := browser.NewTab(t)

	openLoginPage(tab, site.url(docsPage))
	signIn(tab, "alice", "not the password")
	tab.Do("wait for the error", chromedp.WaitVisible(chromedp.CSS(errorMessage)))
	assert.Contains(t, text(tab, errorMessage), "Invalid username or password")
	assert.Equal(t, "alice", value(tab, usernameField), "the name stays filled in")
	assert.Empty(t, value(tab, passwordField), "the wrong password does not")
	assert.False(t, present(tab, protectedText))
	assert.Nil(t, sessionCookie(tab, site), "no session was started")
	focused := chromium.Run(tab, "see which field has focus", chromedp.Evaluate[string](`document.activeElement.name || ""`))
	assert.Equal(t, "password", focused, "the person can type the password again at once")

	// Typing the password again, with nothing else, signs in.
	tab.Do("type the right password and press Enter", chromedp.KeyEvent(alicePassword), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(protectedText)))
}

func browserKeepMeSignedInGivesAPersistentCookie(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "remember_lifetime 30d")

	remembered := browser.NewTab(t)
	openLoginPage(remembered, site.url(docsPage))
	remembered.Do("tick Keep me signed in", chromedp.Click(chromedp.CSS(rememberBox)))
	signIn(remembered, "alice", alicePassword)
	remembered.Do("wait for the page", chromedp.WaitVisible(chromedp.CSS(protectedText)))
	c := sessionCookie(remembered, site)
	require.NotNil(t, c, "signed in, the browser holds a session cookie")
	assert.False(t, c.Session, "the cookie outlives the browser session")
	expires := time.Unix(int64(c.Expires), 0)
	assert.WithinDuration(t, time.Now().Add(30*24*time.Hour), expires, time.Hour, "it lasts remember_lifetime")
	assert.True(t, c.HTTPOnly, "page scripts cannot read it")

	plain := browser.NewTab(t)
	signInAsAlice(plain, site)
	c = sessionCookie(plain, site)
	require.NotNil(t, c, "signed in, the browser holds a session cookie")
	assert.True(t, c.Session, "without Keep me signed in, the cookie ends with the browser session")
}

func browserAccountPageSignsOutAnotherBrowser(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	laptop, phone := browser.NewTab(t), browser.NewTab(t)
	signInAsAlice(laptop, site)
	signInAsAlice(phone, site)

	laptop.Do("open the account page and sign out the other session",
		chromedp.Navigate(site.url("/account")),
		chromedp.WaitVisible(chromedp.CSS(revokeButton)),
		chromedp.Click(chromedp.CSS(revokeButton)),
		chromedp.WaitVisible(chromedp.CSS(noticeMessage)),
	)
	assert.Contains(t, text(laptop, noticeMessage), "signed out")
	assert.False(t, present(laptop, revokeButton), "the other session is no longer listed")

	openLoginPage(phone, site.url(docsPage))
	assert.Equal(t, "/login", urlPath(t, location(phone)), "the signed-out browser's next page is the login page")
	assert.False(t, present(phone, protectedText))

	laptop.Do("open the page again on the laptop", chromedp.Navigate(site.url(docsPage)), chromedp.WaitVisible(chromedp.CSS(protectedText)))
}

func browserPasswordChangeOnTheAccountPage(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	const newPassword = "a much better passphrase"
	tab := browser.NewTab(t)
	signInAsAlice(tab, site)
	tab.Do("change the password on the account page",
		chromedp.Navigate(site.url("/account")),
		chromedp.SendKeys(chromedp.CSS(`input[name="current_password"]`), alicePassword),
		chromedp.SendKeys(chromedp.CSS(`input[name="new_password"]`), newPassword),
		chromedp.Click(chromedp.CSS(passwordButton)),
		chromedp.WaitVisible(chromedp.CSS(noticeMessage)),
	)
	assert.Contains(t, text(tab, noticeMessage), "Password changed")

	again := browser.NewTab(t)
	openLoginPage(again, site.url(docsPage))
	signIn(again, "alice", alicePassword)
	again.Do("wait for the error", chromedp.WaitVisible(chromedp.CSS(errorMessage)))
	assert.Contains(t, text(again, errorMessage), "Invalid username or password", "the old password no longer works")
	signIn(again, "alice", newPassword)
	again.Do("wait for the page", chromedp.WaitVisible(chromedp.CSS(protectedText)))
	assert.Equal(t, site.url(docsPage), location(again), "the new one does")
}

// Signing out on the account page, then going Back twice, through the
// account page to the protected page: neither is shown again, as both were
// in the back-forward cache when the sign-out changed the session cookie.
func browserBackAfterSignOutDoesNotShowTheProtectedPage(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	tab := browser.NewTab(t)
	signInAsAlice(tab, site)
	tab.Do("sign out on the account page",
		chromedp.Navigate(site.url("/account")),
		chromedp.WaitVisible(chromedp.CSS(accountSignOut)),
		chromedp.Click(chromedp.CSS(accountSignOut)),
		chromedp.WaitVisible(chromedp.CSS(passwordField)),
	)

	for _, back := range []string{"the account page", "the protected page"} {
		tab.Do("press Back, towards "+back, chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.CSS(passwordField)))
		assert.Equal(t, "/login", urlPath(t, location(tab)), "Back towards %s shows the login page", back)
		assert.False(t, present(tab, protectedText))
		assert.False(t, present(tab, passwordButton), "nor the account page")
	}
}

// Signing out with a form on the protected page itself, where most sites
// put it, then Back: the page must not come back from the back-forward
// cache, which Chromium keeps a no-store page in unless a cookie changes
// while it is there.
func browserBackAfterSignOutOnTheProtectedPage(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	tab := browser.NewTab(t)
	signInAsAlice(tab, site)
	tab.Do("sign out with the page's own form",
		chromedp.Click(chromedp.CSS(pageSignOut)),
		chromedp.WaitVisible(chromedp.CSS(passwordField)),
	)
	assert.Equal(t, "You have been signed out", text(tab, noticeMessage))
	// Back by script, as chromedp's NavigateBack waits for a load that a
	// page restored from the cache never has; then wait for the next page.
	signedOut := location(tab)
	chromium.Run(tab, "press Back", chromedp.Evaluate[bool](`history.back(), true`))
	waitUntil(t, tab, "a page after Back", `location.href !== `+strconv.Quote(signedOut)+
		` && document.readyState === "complete" && document.querySelector("#protected, input[name=password]") !== null`)
	assert.False(t, present(tab, protectedText), "Back does not show the protected page")
	assert.Equal(t, "/login", urlPath(t, location(tab)))
}

func browserKeyboardOnlySignIn(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	tab := browser.NewTab(t)
	openLoginPage(tab, site.url(docsPage))
	tab.Do("wait for the username field to have the focus",
		chromedp.Poll[chromedp.Void](`document.activeElement && document.activeElement.name === "username"`,
			chromedp.WithPollingTimeout(chromium.StepTimeout)))

	tab.Do("type the name, Tab, the password, Enter",
		chromedp.KeyEvent("alice"),
		chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent(alicePassword),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(protectedText)),
	)
	assert.Equal(t, site.url(docsPage), location(tab))
}

// Two-step sign-in as a person meets it: set up an authenticator from the
// account page (the QR code and the key shown, the app's code typed in),
// see the recovery codes once, sign out, then sign in with the password
// and the code on the page that asks for it, landing where they were going.
func browserTwoStepSignIn(t *testing.T, browser *chromium.Browser) {
	db := newTestDB(t)
	db.addUser(t, "alice", alicePassword)
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "docs"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "docs", "page.html"), []byte(protectedPage), 0o644))
	site := startSite(t, siteOptions{db: db.url, app: "secrets_key " + testSecretsKey, next: fileServer(t, root)})
	tab := browser.NewTab(t)
	signInAsAlice(tab, site)

	secret := turnOnAuthenticator(t, tab, site)
	codes := chromium.Run(tab, "read the recovery codes", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll(".recovery-codes code")].map(c => c.textContent)`))
	assert.Len(t, codes, 10, "ten recovery codes, shown once")

	tab.Do("sign out on the account page", chromedp.Click(chromedp.CSS(accountSignOut)), chromedp.WaitVisible(chromedp.CSS(passwordField)))
	openLoginPage(tab, site.url(docsPage))
	signIn(tab, "alice", alicePassword)
	tab.Do("wait for the page that asks for the code", chromedp.WaitVisible(chromedp.CSS(`#code`)))
	assert.Nil(t, sessionCookie(tab, site), "the password alone starts no session")
	focused := chromium.Run(tab, "see which field has focus", chromedp.Evaluate[string](`document.activeElement.id`))
	assert.Equal(t, "code", focused, "the code field is ready to type in")
	next, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	require.NoError(t, err)
	tab.Do("type the next code and press Enter", chromedp.KeyEvent(next), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(protectedText)))
	assert.Equal(t, site.url(docsPage), location(tab), "the person lands on the page asked for")
	assert.NotNil(t, sessionCookie(tab, site))
}

// turnOnAuthenticator sets up an authenticator app on the account page of
// the tab's signed-in user, as a person would, and returns its secret; the
// page then shows the recovery codes.
func turnOnAuthenticator(t *testing.T, tab *chromium.Tab, site *testSite) string {
	t.Helper()
	tab.Do("set up an authenticator on the account page",
		chromedp.Navigate(site.url("/account")),
		chromedp.Click(chromedp.CSS(`form:has(input[name="action"][value="totp-setup"]) button`)),
		chromedp.WaitVisible(chromedp.CSS(`.qr-box svg`)),
	)
	secret := text(tab, ".totp-secret")
	code, err := totp.GenerateCode(secret, time.Now())
	require.NoError(t, err)
	tab.Do("type the app's code and turn it on",
		chromedp.SendKeys(chromedp.CSS(`#totp-code`), code),
		chromedp.Click(chromedp.CSS(`form:has(input[name="action"][value="totp-confirm"]) button`)),
		chromedp.WaitVisible(chromedp.CSS(`.recovery-codes`)),
	)
	return secret
}

// openLoginPage opens rawURL, as typed into the address bar, while signed
// out, and waits for the login form it leads to.
func openLoginPage(tab *chromium.Tab, rawURL string) {
	tab.Do("open "+rawURL+" and wait for the login form",
		chromedp.Navigate(rawURL),
		chromedp.WaitVisible(chromedp.CSS(passwordField)),
	)
}

// signInAsAlice opens the docs page, signs in as alice on the login page it
// leads to, and waits for the docs page.
func signInAsAlice(tab *chromium.Tab, site *testSite) {
	openLoginPage(tab, site.url(docsPage))
	signIn(tab, "alice", alicePassword)
	tab.Do("wait for the docs page", chromedp.WaitVisible(chromedp.CSS(protectedText)))
}

// signIn fills in the login form shown and presses Sign in, typing the
// name only when it is not filled in already, as after a failed attempt.
// The caller waits for what should follow, on the next page.
func signIn(tab *chromium.Tab, username, password string) {
	steps := []chromedp.Action[chromedp.Void]{chromedp.WaitVisible(chromedp.CSS(passwordField))}
	if value(tab, usernameField) != username {
		steps = append(steps, chromedp.SendKeys(chromedp.CSS(usernameField), username))
	}
	steps = append(steps,
		chromedp.SendKeys(chromedp.CSS(passwordField), password),
		chromedp.Click(chromedp.CSS(signInButton)),
	)
	tab.Do("sign in as "+username, steps...)
}

func location(tab *chromium.Tab) string {
	return chromium.Run(tab, "read the address", chromedp.Location())
}

// siteAt is the address of path on site by the host name host (which the
// browser must resolve to 127.0.0.1), at the site's port.
func siteAt(t *testing.T, site *testSite, host, path string) string {
	t.Helper()
	u := parseURL(t, site.url(path))
	u.Host = host + ":" + u.Port()
	return u.String()
}

func urlPath(t *testing.T, rawURL string) string {
	t.Helper()
	return parseURL(t, rawURL).Path
}

func parseURL(t *testing.T, rawURL string) *url.URL {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	return u
}

func text(tab *chromium.Tab, selector string) string {
	return chromium.Run(tab, "read the text of "+selector, chromedp.Text(chromedp.CSS(selector)))
}

func value(tab *chromium.Tab, selector string) string {
	return chromium.Run(tab, "read the value of "+selector, chromedp.Value(chromedp.CSS(selector)))
}

// waitUntil waits until the script condition is true on the page shown.
// Each check may meet a page being replaced, which fails it, so it polls
// from here rather than with chromedp.Poll, which a navigation ends.
func waitUntil(t *testing.T, tab *chromium.Tab, what, condition string) {
	t.Helper()
	check := chromedp.Evaluate[bool](condition)
	require.Eventually(t, func() bool {
		ok, err := chromium.Try(tab, check)
		return err == nil && ok
	}, chromium.StepTimeout, 20*time.Millisecond, "no %s", what)
}

// present reports whether the page shown has an element matching selector.
func present(tab *chromium.Tab, selector string) bool {
	return chromium.Run(tab, "look for "+selector, chromedp.Evaluate[bool](
		`document.querySelector(`+strconv.Quote(selector)+`) !== null`))
}

// sessionCookie is the session cookie the tab's browser context holds for
// site, or nil.
func sessionCookie(tab *chromium.Tab, site *testSite) *network.Cookie {
	return sessionCookieAt(tab, site.url("/"))
}

// sessionCookieAt is the session cookie the tab's browser context sends to
// rawURL, or nil. The protocol's Network.getCookies sees HttpOnly cookies,
// which a page's document.cookie does not.
func sessionCookieAt(tab *chromium.Tab, rawURL string) *network.Cookie {
	cookies := chromium.Run(tab, "read the cookies", func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{rawURL}})
		return res.Cookies, err
	})
	for _, c := range cookies {
		if c.Name == "session" {
			return c
		}
	}
	return nil
}
