package pgsession

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/templates"
	"github.com/chromedp/chromedp"
	"github.com/pgsession/caddy-pgsession/internal/chromium"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The pages as a person sees them: light and dark, and on a phone's screen.

func browserPagesInLightAndDark(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	dir := artifactsDir(t)
	tab := browser.NewTab(t)
	background := map[string]string{}
	for _, scheme := range []string{"light", "dark"} {
		tab.Do("see the system's appearance as "+scheme, chromium.ColorScheme(scheme))
		openLoginPage(tab, site.url(docsPage))
		background["login "+scheme] = backgroundColor(tab)
		tab.Screenshot(filepath.Join(dir, "login-"+scheme+".png"))
	}
	signIn(tab, "alice", alicePassword)
	tab.Do("wait for the page", chromedp.WaitVisible(chromedp.CSS(protectedText)))
	for _, scheme := range []string{"light", "dark"} {
		tab.Do("open the account page in "+scheme,
			chromium.ColorScheme(scheme),
			chromedp.Navigate(site.url("/account")),
			chromedp.WaitVisible(chromedp.CSS(passwordButton)),
		)
		background["account "+scheme] = backgroundColor(tab)
		tab.Screenshot(filepath.Join(dir, "account-"+scheme+".png"))
	}

	for _, page := range []string{"login", "account"} {
		assert.NotEqual(t, background[page+" light"], background[page+" dark"], "the %s page has a dark style", page)
		for _, scheme := range []string{"light", "dark"} {
			name := page + "-" + scheme + ".png"
			assert.True(t, chromium.IsPNG(filepath.Join(dir, name)), "%s is a PNG image in %s", name, dir)
		}
	}
}

func browserLoginPageFitsAPhone(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	tab := browser.NewTab(t)
	tab.Do("open the login page 375 px wide",
		chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
		chromedp.Navigate(site.url("/login")),
		chromedp.WaitVisible(chromedp.CSS(signInButton)),
	)
	tab.Screenshot(filepath.Join(artifactsDir(t), "login-375px.png"))
	widths := chromium.Run(tab, "measure the page", chromedp.Evaluate[[]int](
		`[document.documentElement.scrollWidth, document.documentElement.clientWidth]`))
	assert.LessOrEqual(t, widths[0], widths[1], "the page scrolls sideways: %d px wide in a %d px viewport", widths[0], widths[1])
}

// The demo site, as make demo serves it (file_server with templates), at
// 375 px with a long username: its header wraps instead of making the page
// scroll sideways, and it links to the account page.
func browserDemoSiteFitsAPhone(t *testing.T, browser *chromium.Browser) {
	db := newTestDB(t)
	name := "Maximiliane-Wolkenstein"
	db.addUser(t, name, alicePassword)
	site := startSite(t, siteOptions{db: db.url, handler: "public /assets/*", next: withTemplates(t, fileServer(t, "demo/site"))})
	tab := browser.NewTab(t)
	tab.Do("open the demo 375 px wide", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile))
	openLoginPage(tab, site.url("/"))
	signIn(tab, name, alicePassword)
	tab.Do("wait for the demo's home page", chromedp.WaitVisible(chromedp.CSS(`header.bar`)))
	tab.Screenshot(filepath.Join(artifactsDir(t), "demo-375px.png"))
	assert.Contains(t, text(tab, "h1"), name, "the page's templates ran")
	widths := chromium.Run(tab, "measure the page", chromedp.Evaluate[[]int](
		`[document.documentElement.scrollWidth, document.documentElement.clientWidth]`))
	assert.LessOrEqual(t, widths[0], widths[1], "the page scrolls sideways: %d px wide in a %d px viewport", widths[0], widths[1])
	inside := chromium.Run(tab, "measure the header's parts", chromedp.Evaluate[bool](
		`[...document.querySelectorAll("header.bar a, header.bar button")].every(e => e.getBoundingClientRect().right <= document.documentElement.clientWidth)`))
	assert.True(t, inside, "every link and button of the header is inside the screen")
	tab.Do("follow the account link", chromedp.Click(chromedp.CSS(`header.bar a[href="/account"]`)),
		chromedp.WaitVisible(chromedp.CSS(passwordButton)))
}

// withTemplates puts Caddy's templates handler in front of next, as the
// demo's Caddyfile does.
func withTemplates(t *testing.T, next caddyhttp.Handler) caddyhttp.Handler {
	t.Helper()
	tmpl := &templates.Templates{}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	require.NoError(t, tmpl.Provision(ctx))
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return tmpl.ServeHTTP(w, r, next)
	})
}

// artifactsDir is where screenshots go: $BROWSER_ARTIFACTS, or
// artifacts/browser at the repository's root (ignored by git).
func artifactsDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("BROWSER_ARTIFACTS"); dir != "" {
		return dir
	}
	dir, err := filepath.Abs(filepath.Join("artifacts", "browser"))
	require.NoError(t, err)
	return dir
}

func backgroundColor(tab *chromium.Tab) string {
	return chromium.Run(tab, "read the page's background colour",
		chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
}
