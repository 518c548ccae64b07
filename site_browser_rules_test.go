package pgsession

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/chromium"
)

// The pages the access rules show a person, in a real browser.

// startRulesDocs serves protectedPage at /docs/page.html and
// /docs/secret/page.html behind the gate with handler's rules, for alice,
// with a secrets_key for two-step sign-in.
func startRulesDocs(t *testing.T, handler string) *testSite {
	t.Helper()
	db := newTestDB(t)
	db.addUser(t, "alice", alicePassword)
	root := t.TempDir()
	for _, dir := range []string{"docs", "docs/secret"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, dir), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, dir, "page.html"), []byte(protectedPage), 0o644))
	}
	return startSite(t, siteOptions{db: db.url, app: "secrets_key " + testSecretsKey, handler: handler, next: fileServer(t, root)})
}

// A person a rule keeps out sees who they are signed in as, and can sign
// out from the page to sign in as someone else.
func browserForbiddenPageSignsOut(t *testing.T, browser *chromium.Browser) {
	site := startRulesDocs(t, "allow /docs/secret/* group staff")
	tab := browser.NewTab(t)
	signInAsAlice(tab, site)

	tab.Do("open a page alice may not see", chromedp.Navigate(site.url("/docs/secret/page.html")),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"] button`)))
	assert.False(t, present(tab, protectedText))
	assert.Contains(t, text(tab, "main"), "signed in as alice")
	assert.Contains(t, text(tab, "h1"), "Not allowed")
	assert.True(t, present(tab, `a[href="/"]`), "a way back to the site")

	tab.Do("sign out from the page", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(passwordField)))
	assert.Nil(t, sessionCookie(tab, site), "signed out")
}

// A rule with second_factor asks a person who signed in with the password
// alone for the authenticator's code before its page, then shows it, in
// the same session.
func browserStepUpWithTOTP(t *testing.T, browser *chromium.Browser) {
	site := startRulesDocs(t, "allow /docs/secret/* any_user second_factor")
	tab := browser.NewTab(t)
	signInAsAlice(tab, site)
	secret := turnOnAuthenticator(t, tab, site)
	before := sessionCookie(tab, site)
	require.NotNil(t, before)

	tab.Do("open the page that needs a second factor", chromedp.Navigate(site.url("/docs/secret/page.html?tab=3")),
		chromedp.WaitVisible(chromedp.CSS(`#code`)))
	assert.Contains(t, text(tab, "main"), "Signed in as alice")
	next, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	require.NoError(t, err)
	tab.Do("type the next code and press Enter", chromedp.KeyEvent(next), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(protectedText)))
	assert.Equal(t, site.url("/docs/secret/page.html?tab=3"), location(tab), "back on the page asked for")
	assert.Equal(t, "Showing tab 3", text(tab, "#tab"))
	after := sessionCookie(tab, site)
	require.NotNil(t, after)
	assert.Equal(t, before.Value, after.Value, "the same session, stepped up")
}
