package pgsession

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/chromium"
)

// An invitation accepted in a real Chromium: the link an admin handed on,
// the form filled in, the new account signed in at once and shown on the
// account page, on a site without registration.

func TestBrowserInvitation(t *testing.T) {
	t.Parallel()
	browser := chromium.Start(t)
	t.Run("AcceptedFromItsLink", func(t *testing.T) {
		t.Parallel()
		browserInvitationAccepted(t, browser)
	})
}

func browserInvitationAccepted(t *testing.T, browser *chromium.Browser) {
	db, site := inviteSite(t, `site_name "Team Wiki"`)
	link, _ := createInvitation(t, site, `{"groups":["staff"]}`)
	tab := browser.NewTab(t)

	tab.Do("open the invitation's link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`input[name="confirm"]`)))
	assert.Contains(t, text(tab, "h1"), "Create your account")
	focused := chromium.Run(tab, "see which field has focus", chromedp.Evaluate[string](`document.activeElement.name || ""`))
	assert.Equal(t, "username", focused, "the person can type a name at once")
	referrer := chromium.Run(tab, "read the page's referrer policy",
		chromedp.Evaluate[string](`document.querySelector('meta[name="referrer"]').content`))
	assert.Equal(t, "no-referrer", referrer)

	tab.Do("choose a name and a password and create the account",
		chromedp.SendKeys(chromedp.CSS(usernameField), "newbie"),
		chromedp.SendKeys(chromedp.CSS(passwordField), alicePassword),
		chromedp.SendKeys(chromedp.CSS(`input[name="confirm"]`), alicePassword),
		chromedp.Click(chromedp.CSS(`form[action="/login/invitation"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("body")),
	)
	waitUntil(t, tab, "home page after creating the account", `location.pathname === "/" && document.body.innerText.includes("hello newbie")`)
	require.NotNil(t, sessionCookie(tab, site), "signed in at once")

	tab.Do("open the account page", chromedp.Navigate(site.url("/account")), chromedp.WaitVisible(chromedp.CSS("h1")))
	assert.Equal(t, "newbie", text(tab, "h1"), "the account page shows the new user")
	assert.Equal(t, []string{"staff"}, db.userNamed(t, "newbie").Groups)

	again := browser.NewTab(t)
	again.Do("open the used link in another browser", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("h1")))
	assert.Contains(t, text(again, "main"), "used already")
}
