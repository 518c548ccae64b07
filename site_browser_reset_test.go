package pgsession

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/chromium"
)

// A forgotten password in a real Chromium: "Forgot password?" on the login
// page, the form that asks for a link, the link read from the mail the
// test SMTP server received, the page it opens, and the new password,
// which signs in and lands on the home page.

const (
	forgotLink   = `a[href="/login/forgot"]`
	loginField   = `input[name="login"]`
	forgotButton = `form[action="/login/forgot"] button[type="submit"]`
	confirmField = `input[name="confirm"]`
	resetButton  = `form[action="/login/reset"] button[type="submit"]`
)

func TestBrowserReset(t *testing.T) {
	t.Parallel()
	browser := chromium.Start(t)
	db := newTestDB(t)
	s, srv := resetSite(t, db, siteOptions{})
	db.addUserWithAddress(t, "alice")
	const newPassword = "a password I will remember"

	tab := browser.NewTab(t)
	openLoginPage(tab, s.url("/login"))
	tab.Do("follow Forgot password? and ask for a link",
		chromedp.Click(chromedp.CSS(forgotLink)),
		chromedp.WaitVisible(chromedp.CSS(loginField)),
		chromedp.SendKeys(chromedp.CSS(loginField), "alice@example.com"),
		chromedp.Click(chromedp.CSS(forgotButton)),
		chromedp.WaitVisible(chromedp.CSS(`h1`)),
	)
	waitUntil(t, tab, "the page saying a link is on its way",
		`document.body.innerText.includes("a link is on its way")`)

	link := waitResetLink(t, srv, "alice@example.com", 1)
	tab.Do("open the link and set a new password",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS(confirmField)),
		chromedp.SendKeys(chromedp.CSS(passwordField), newPassword),
		chromedp.SendKeys(chromedp.CSS(confirmField), newPassword),
		chromedp.Click(chromedp.CSS(resetButton)),
	)
	waitUntil(t, tab, "the home page, signed in", `document.body.innerText.includes("hello alice")`)
	assert.Equal(t, s.url("/"), location(tab), "lands on the home page")
	require.NotNil(t, sessionCookie(tab, s), "signed in")

	// The new password is the one that signs in from now on.
	again := browser.NewTab(t)
	openLoginPage(again, s.url("/login"))
	signIn(again, "alice", newPassword)
	waitUntil(t, again, "the home page", `document.body.innerText.includes("hello alice")`)
	assert.True(t, strings.HasPrefix(location(again), s.url("/")))
}
