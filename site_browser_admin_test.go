package pgsession

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/chromium"
)

// The admin page in a real Chromium: used with the keyboard alone, refused
// to a user who is no admin, and out of reach of a form on another site.
// The site is reached as admin.example.test and the other sites as
// evil.example.test (the same site, another origin) and evil.test
// (another site), all on 127.0.0.1.

const (
	adminHost       = "admin.example.test"
	siblingHost     = "evil.example.test"
	otherSiteHost   = "evil.test"
	focusedIsShown  = `(() => { const s = getComputedStyle(document.activeElement); return s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2; })()`
	maxTabsToAnyone = 40
)

func TestBrowserAdmin(t *testing.T) {
	t.Parallel()
	browser := chromium.Start(t, chromium.HostResolverRules("MAP *.example.test 127.0.0.1, MAP evil.test 127.0.0.1"))
	for _, tc := range []struct {
		name string
		test func(*testing.T, *chromium.Browser)
	}{
		{"KeyboardOnly", browserAdminKeyboardOnly},
		{"RefusesAUserWhoIsNoAdmin", browserAdminRefusesANonAdmin},
		{"RefusesAFormFromAnotherSite", browserAdminRefusesAFormFromAnotherSite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, browser)
		})
	}
}

// signInByKeyboard opens path on the site, which leads to the login page,
// and signs in by typing, Tab and Enter, landing back on path.
func signInByKeyboard(t *testing.T, tab *chromium.Tab, site *testSite, path, username, password string) {
	t.Helper()
	openLoginPage(tab, siteAt(t, site, adminHost, path))
	tab.Do("wait for the username field to have the focus",
		chromedp.Poll[chromedp.Void](`document.activeElement && document.activeElement.name === "username"`,
			chromedp.WithPollingTimeout(chromium.StepTimeout)))
	tab.Do("type the name, Tab, the password, Enter",
		chromedp.KeyEvent(username), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(password), chromedp.KeyEvent(kb.Enter))
	waitUntil(t, tab, "the page asked for", `location.pathname === `+strconv.Quote(path)+` && document.readyState === "complete"`)
}

// tabTo presses Tab (Shift+Tab with back) until the focused element
// matches selector, and checks that each element it passes shows its focus.
func tabTo(t *testing.T, tab *chromium.Tab, selector string, back bool) {
	t.Helper()
	var opts []chromedp.KeyOption
	if back {
		opts = append(opts, chromedp.KeyModifiers(chromedp.ModifierShift))
	}
	matches := `document.activeElement && document.activeElement.matches(` + strconv.Quote(selector) + `)`
	for range maxTabsToAnyone {
		tab.Do("press Tab", chromedp.KeyEvent(kb.Tab, opts...))
		if chromium.Run(tab, "see what has the focus", chromedp.Evaluate[bool](matches)) {
			assert.True(t, chromium.Run(tab, "see the focus", chromedp.Evaluate[bool](focusedIsShown)),
				"the focus on %s is not visible", selector)
			return
		}
	}
	t.Fatalf("%d presses of Tab never reached %s", maxTabsToAnyone, selector)
}

// press presses key on what has the focus, and waits for the page it leads
// to: one whose status message contains says.
func press(t *testing.T, tab *chromium.Tab, key, says string) {
	t.Helper()
	tab.Do("press "+key, chromedp.KeyEvent(key))
	waitUntil(t, tab, "the message "+says, `document.readyState === "complete" && (document.querySelector('[role="status"], h2#confirm-title') || {}).textContent?.includes(`+strconv.Quote(says)+`)`)
}

func browserAdminKeyboardOnly(t *testing.T, browser *chromium.Browser) {
	s := startAdminPageSiteNoLogin(t)
	tab := browser.NewTab(t)
	console := tab.WatchConsole()
	signInByKeyboard(t, tab, s.site, "/admin", "root", rootPassword)

	// The first Tab reaches the skip link, shown with the focus; Enter
	// skips the navigation, and the next Tab is the search.
	tabTo(t, tab, "a.skip-link", false)
	assert.True(t, chromium.Run(tab, "see the skip link", chromedp.Evaluate[bool](
		`document.activeElement.getBoundingClientRect().top >= 0`)), "the focused skip link is on the screen")
	tab.Do("press Enter on the skip link", chromedp.KeyEvent(kb.Enter))
	tabTo(t, tab, "input#q", false)
	tab.Do("type a search and press Enter", chromedp.KeyEvent("ali"), chromedp.KeyEvent(kb.Enter))
	waitUntil(t, tab, "the search's results", `location.search === "?q=ali" && document.readyState === "complete"`)
	assert.False(t, present(tab, `a[href="/admin/users/root"]`), "only the names containing ali")

	tabTo(t, tab, `a[href="/admin/users/alice"]`, false)
	tab.Do("open alice's page", chromedp.KeyEvent(kb.Enter))
	waitUntil(t, tab, "alice's page", `location.pathname === "/admin/users/alice" && document.readyState === "complete"`)

	// Space presses the focused button, as Enter does.
	tabTo(t, tab, `form[action$="/admin"] button`, false)
	press(t, tab, " ", "alice is now an admin")
	require.Eventually(t, func() bool { return s.db.userNamed(t, "alice").IsAdmin }, 5*time.Second, 20*time.Millisecond)

	// Deleting asks first; Shift+Tab goes back from Cancel to the button.
	tabTo(t, tab, `form[action$="/delete"] button`, false)
	press(t, tab, kb.Enter, "Delete alice?")
	assert.Equal(t, 1, s.db.count(t, `SELECT count(*) FROM pgsession.users WHERE username = 'alice'`), "asking deletes nothing")
	tabTo(t, tab, `.confirm a.button`, false)
	tabTo(t, tab, `.confirm button.danger`, true)
	press(t, tab, " ", "The user was deleted")
	assert.Zero(t, s.db.count(t, `SELECT count(*) FROM pgsession.users WHERE username = 'alice'`))
	assert.Equal(t, "/admin", urlPath(t, location(tab)))

	for _, m := range console.Messages() {
		assert.NotContains(t, []string{"error", "exception"}, string(m.Type), "the console showed: %s", m.Text)
	}
}

// startAdminPageSiteNoLogin is startAdminPageSite for a browser that signs
// in itself.
func startAdminPageSiteNoLogin(t *testing.T) adminPageSite {
	t.Helper()
	db := newTestDB(t)
	db.addAdmin(t, "root", rootPassword)
	db.addUser(t, "alice", alicePassword)
	return adminPageSite{db: db, site: startSite(t, siteOptions{db: db.url})}
}

func browserAdminRefusesANonAdmin(t *testing.T, browser *chromium.Browser) {
	s := startAdminPageSiteNoLogin(t)
	tab := browser.NewTab(t)
	openLoginPage(tab, siteAt(t, s.site, adminHost, "/admin"))
	signIn(tab, "alice", alicePassword)
	tab.Do("wait for the refusal", chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"] button`)))
	assert.Contains(t, text(tab, "h1"), "Not allowed")
	assert.Contains(t, text(tab, "main"), "signed in as alice, who is no admin")
	assert.False(t, present(tab, `a[href^="/admin/users/"]`), "no user is shown")
	assert.Equal(t, "/admin", urlPath(t, location(tab)))

	tab.Do("sign out from the page", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(passwordField)))
	assert.Nil(t, sessionCookieAt(tab, siteAt(t, s.site, adminHost, "/")), "signed out")
}

// attackPage is a page of another site that sends a form to target at
// once, as a cross-site request forgery does.
func attackPage(target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>Win a prize</title></head><body>
<form id="f" method="post" action="%s"><input type="hidden" name="confirm" value="yes"></form>
<script>document.getElementById("f").submit()</script></body></html>`, target)
	})
}

func browserAdminRefusesAFormFromAnotherSite(t *testing.T, browser *chromium.Browser) {
	s := startAdminPageSiteNoLogin(t)
	tab := browser.NewTab(t)
	signInByKeyboard(t, tab, s.site, "/admin", "root", rootPassword)
	target := siteAt(t, s.site, adminHost, "/admin/users/alice/delete")
	evil := httptest.NewServer(attackPage(target))
	t.Cleanup(evil.Close)

	for _, host := range []string{siblingHost, otherSiteHost} {
		before := s.db.fingerprint(t)
		u := parseURL(t, evil.URL)
		tab.Do("open a page of "+host, chromedp.Navigate("http://"+host+":"+u.Port()+"/"))
		waitUntil(t, tab, "the answer to the form", `location.href === `+strconv.Quote(target)+` && document.readyState === "complete"`)
		assert.NotContains(t, text(tab, "body"), "Delete alice?", "from %s", host)
		assert.Equal(t, before, s.db.fingerprint(t), "a form from %s changes nothing", host)
		assert.Equal(t, 1, s.db.count(t, `SELECT count(*) FROM pgsession.users WHERE username = 'alice'`))
	}
	// From the same site on another origin, the browser sends the cookie,
	// and the cross-origin protection refuses the form.
	assert.Contains(t, s.site.accessLog(), "POST /admin/users/alice/delete 403")

	// The page's own form still works.
	tab.Do("open alice's page", chromedp.Navigate(siteAt(t, s.site, adminHost, "/admin/users/alice")),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/delete"] button`)))
	assert.Equal(t, "alice", text(tab, "h1"))
}
