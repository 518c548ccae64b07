package pgsession

import (
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/chromium"
	"github.com/pgsession/caddy-pgsession/internal/oidctest"
)

// Signing in with an identity provider in a real Chromium: the login
// page's "Sign in with Test" button, the provider's own login page (a real
// OpenID provider process of internal/oidctest, on 127.0.0.1 at a port of
// its own) and the redirect back to the page asked for; then the account
// page, signing out, and a sign-in denied at the provider. The browser
// follows every redirect itself, so a Content Security Policy that refused
// one, a cookie it did not send back, or a page that is missing shows here
// as it would to a person.

const (
	// providerButton is the login page's link that starts a sign-in with
	// the provider named test; a provider that is unavailable is a
	// disabled button instead, which this does not match.
	providerButton = `a[data-provider="test"]`
	// The provider's login page: who to be, then Sign in or Deny.
	providerUser   = `select#user`
	providerSignIn = `button#sign-in`
	providerDeny   = `button#deny`
	// linkedAccount is one account listed in the account page's "Linked
	// accounts" section.
	linkedAccount = `#linked-accounts li.identity`
)

func TestBrowserIdentity(t *testing.T) {
	t.Parallel()
	browser := chromium.Start(t)
	t.Run("SignInThroughTheProviderAndBackThenDeny", func(t *testing.T) {
		t.Parallel()
		browserIdentitySignInAndDeny(t, browser)
	})
}

func browserIdentitySignInAndDeny(t *testing.T, browser *chromium.Browser) {
	p := oidctest.StartProvider(t, oidctest.Options{})
	// Two accounts, so the one chosen on the provider's page is the one
	// that signs in: dave is the page's first option, carol is chosen.
	p.AddUser(t, oidctest.User{Subject: "dave-sub", Email: "dave@example.com", EmailVerified: true, PreferredUsername: "dave"})
	p.AddUser(t, oidctest.User{Subject: "carol-sub", Email: "carol@example.com", EmailVerified: true, PreferredUsername: "carol"})
	db := newTestDB(t)
	s := startProviderSite(t, siteOptions{db: db.url}, p, "allow_domains example.com\n\tauto_create on")
	docs := s.url("/docs/")

	tab := browser.NewTab(t)
	console := tab.WatchConsole()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the console showed:\n%s", consoleText(console))
			t.Logf("the provider printed:\n%s", p.Logs())
		}
	})

	// A protected page, signed out, leads to the login page, which offers
	// the provider beside the password form.
	openLoginPage(tab, docs)
	assert.Equal(t, "/login", urlPath(t, location(tab)), "a visitor without a session is sent to the login page")
	require.True(t, present(tab, providerButton), "the login page offers no available provider named test")
	assert.Equal(t, "Sign in with Test", text(tab, providerButton))

	// The button leads to the provider's login page.
	clickProviderButton(t, tab, p)

	// Choosing carol and pressing Sign in lands on the page asked for,
	// signed in as carol, through the provider's redirect to the callback
	// and the callback's redirect to the page.
	tab.Do("choose carol and press Sign in at the provider",
		chromedp.SetValue(chromedp.CSS(providerUser), "carol-sub"),
		chromedp.Click(chromedp.CSS(providerSignIn)),
	)
	waitForPage(t, tab, "protected page, signed in with the provider", docs, "hello carol")
	require.NotNil(t, sessionCookie(tab, s), "signed in, the browser holds a session cookie")
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.users WHERE username = 'carol'`),
		"auto_create made the user carol")
	assert.Equal(t, 0, db.count(t, `SELECT count(*) FROM pgsession.users WHERE username = 'dave'`),
		"and no user for the account not chosen")

	// The account page lists the linked account, which cannot be unlinked
	// as it is carol's only way to sign in.
	tab.Do("open the account page", chromedp.Navigate(s.url("/account")), chromedp.WaitVisible(chromedp.CSS(linkedAccount)))
	assert.Equal(t, s.url("/account"), location(tab), "no sign-in on the way")
	assert.Contains(t, text(tab, "h1"), "carol")
	linked := chromium.Run(tab, "read the linked accounts", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll(`+strconv.Quote(linkedAccount)+`)].map(li => li.innerText)`))
	require.Len(t, linked, 1, "one linked account")
	assert.Contains(t, linked[0], "Test", "the provider's label")
	assert.Contains(t, linked[0], "carol@example.com", "the address the provider gave")
	assert.True(t, chromium.Run(tab, "look at the Unlink button", chromedp.Evaluate[bool](
		`[...document.querySelectorAll(`+strconv.Quote(linkedAccount+` button`)+`)].some(b => b.textContent.trim() === "Unlink" && b.disabled)`)),
		"Unlink is offered disabled, the account being carol's only way to sign in")

	// Signing out on the account page ends the session.
	tab.Do("sign out on the account page",
		chromedp.Click(chromedp.CSS(accountSignOut)),
		chromedp.WaitVisible(chromedp.CSS(passwordField)),
	)
	assert.Contains(t, text(tab, "body"), "You have been signed out")
	assert.Nil(t, sessionCookie(tab, s), "signed out, the browser holds no session cookie")
	assert.Equal(t, 0, db.count(t, `SELECT count(*) FROM pgsession.sessions`), "the session has ended")

	// The same again, pressing Deny at the provider: a page that says the
	// provider did not sign the person in, and offers to try again.
	openLoginPage(tab, docs)
	clickProviderButton(t, tab, p)
	tab.Do("press Deny at the provider", chromedp.Click(chromedp.CSS(providerDeny)))
	again := `a[href^="/login/with/test?"]`
	waitUntil(t, tab, "page after Deny that offers to sign in with Test again",
		`location.origin === `+strconv.Quote(strings.TrimSuffix(s.url("/"), "/"))+` && document.readyState === "complete" && `+
			`document.querySelector(`+strconv.Quote(again)+`) !== null`)
	assert.Equal(t, "/login/callback/test", urlPath(t, location(tab)), "the provider sent the browser back to the callback")
	denied := text(tab, "main")
	assert.Contains(t, denied, "Error 401")
	assert.Contains(t, denied, "did not allow Test to sign you in", "the page says the sign-in was not allowed")
	assert.Equal(t, "Sign in with Test again", text(tab, again))
	assert.Nil(t, sessionCookie(tab, s), "denied, the browser holds no session cookie")
	assert.Equal(t, 0, db.count(t, `SELECT count(*) FROM pgsession.sessions`), "and no session was started")

	// "Sign in with Test again" starts over, coming back to the page asked
	// for at first.
	tab.Do("press Sign in with Test again", chromedp.Click(chromedp.CSS(again)), chromedp.WaitVisible(chromedp.CSS(providerUser)))
	assert.Equal(t, p.Addr(), parseURL(t, location(tab)).Host, "on the provider's login page again")
	tab.Do("choose carol and press Sign in at the provider",
		chromedp.SetValue(chromedp.CSS(providerUser), "carol-sub"),
		chromedp.Click(chromedp.CSS(providerSignIn)),
	)
	waitForPage(t, tab, "protected page, signed in after trying again", docs, "hello carol")

	// No page of the way was refused by a Content Security Policy; and a
	// refusal would have been heard, as one on a plugin page is.
	tab.Do("open the account page", chromedp.Navigate(s.url("/account")), chromedp.WaitVisible(chromedp.CSS(linkedAccount)))
	for _, m := range console.Messages() {
		assert.NotContains(t, m.Text, cspRefusal, "the console shows a Content Security Policy refusal")
	}
	consoleHearsCSP(t, tab, console)
}

// clickProviderButton clicks "Sign in with Test" on the login page shown and
// waits for the provider's login page, the page of p's authorization
// endpoint.
func clickProviderButton(t *testing.T, tab *chromium.Tab, p *oidctest.Provider) {
	t.Helper()
	tab.Do("click Sign in with Test",
		chromedp.Click(chromedp.CSS(providerButton)),
		chromedp.WaitVisible(chromedp.CSS(providerUser)),
	)
	at := parseURL(t, location(tab))
	assert.Equal(t, p.Addr(), at.Host, "the button leads to the provider")
	assert.Equal(t, "/authorize", at.Path, "to its authorization endpoint")
	assert.True(t, present(tab, providerSignIn) && present(tab, providerDeny), "the provider's page offers Sign in and Deny")
	assert.Equal(t, "dave-sub", value(tab, providerUser), "the page's first account is chosen until the person chooses another")
}
