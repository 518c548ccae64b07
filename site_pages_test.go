package pgsession

import (
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// The pages people see: a browser meets the plugin's refusals as pages in
// the login page's style, a script as JSON; signing out, the login page and
// the account page say what happened where it happened.

// browserAccept is the Accept header of a browser's navigation and of its
// form submissions.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

// submit sends a form as a browser does from a page of the site: accepting
// HTML, from the same origin, with the page as its Referer.
func (b *browser) submit(s *testSite, path string, form url.Values, fromPath string) reply {
	b.t.Helper()
	origin := s.url("")
	return b.do(webtest.Request(b.t, http.MethodPost, s.url(path), strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Accept", browserAccept,
		"Origin", origin, "Sec-Fetch-Site", "same-origin", "Referer", origin+fromPath))
}

// assertPage asserts that resp is one of the plugin's own HTML pages, with
// its strict headers, headed heading.
func assertPage(t *testing.T, resp reply, heading string) {
	t.Helper()
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	assert.True(t, strings.HasPrefix(resp.body, "<!doctype html>"), "not an HTML page: %.80s", resp.body)
	assert.Regexp(t, `<h1[^>]*>`+regexp.QuoteMeta(html.EscapeString(heading))+`</h1>`, markup(resp.body))
}

// markup is body without its stylesheet, so a failed assertion shows what matters.
func markup(body string) string {
	body = strings.ReplaceAll(body, "<script>"+passkeyScriptText+"</script>", "<!-- the passkey script -->")
	return regexp.MustCompile(`(?s)<style>.*?</style>`).ReplaceAllString(body, "<style>…</style>")
}

// passkeyScriptText is the built-in pages' one script, which markup leaves
// out: anything else that looks like a script is not the plugin's.
var passkeyScriptText = func() string {
	b, err := os.ReadFile(filepath.Join("web", "passkey.js"))
	if err != nil {
		panic(err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}()

// tag returns the start tag of the element with id in page.
func tag(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`<[a-z]+\b[^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindString(page)
	require.NotEmpty(t, m, "no element with id %q in the page", id)
	return m
}

// section returns the <section> of page that heading id labels.
func section(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<section aria-labelledby="` + regexp.QuoteMeta(id) + `">.*?</section>`).FindString(page)
	require.NotEmpty(t, m, "no section labelled by %q in the page", id)
	return m
}

// Every refusal a browser can meet is a page with the same status and
// headers as the JSON a script still gets, word for word.
func TestRefusalsArePagesForBrowsersAndJSONForScripts(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	token, _ := db.sessionInDB(t, alice)
	crossSite := []string{"Cookie", cookieHeader(token), "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example",
		"Content-Type", "application/x-www-form-urlencoded"}

	for _, tc := range []struct {
		name, method, path string
		header             []string
		status             int
		json               string
		heading, says      string
		link               string // the way on the page offers first
	}{
		{"a cross-site form to the site", http.MethodPost, "/page", crossSite, http.StatusForbidden,
			`{"error":"Cross-origin request refused"}`, "Not allowed", "came from another site", `<a href="/" class="button">Go to the home page</a>`},
		{"a cross-site form to the account page", http.MethodPost, "/account", crossSite, http.StatusForbidden,
			`{"error":"Cross-origin request refused"}`, "Not allowed", "came from another site", `<a href="/" class="button">`},
		{"the JSON login opened as a page", http.MethodGet, "/api/auth/login", nil, http.StatusMethodNotAllowed,
			`{"error":"Method not allowed"}`, "Not available here", "not a page you can open", `<a href="/" class="button">`},
		{"a route that needs a session", http.MethodGet, "/api/auth/me", nil, http.StatusUnauthorized,
			`{"error":"Not authenticated"}`, "Please sign in", "Not authenticated.",
			`<a href="/login?redirect=%2Fapi%2Fauth%2Fme" class="button">Sign in</a>`},
		{"a form to the site without a session", http.MethodPost, "/page", []string{"Content-Type", "application/x-www-form-urlencoded"},
			http.StatusUnauthorized, `{"error":"Not authenticated"}`, "Please sign in", "Not authenticated.", `<a href="/login" class="button">Sign in</a>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, accept := range []string{"", "*/*", "application/json", "application/json, text/html", "text/html;q=0.5, application/json"} {
				resp := sendRaw(t, tc.method, c.url(tc.path), "x=1", append([]string{"Accept", accept}, tc.header...)...)
				assert.Equal(t, tc.status, resp.StatusCode, "Accept %q", accept)
				assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "Accept %q", accept)
				assert.JSONEq(t, tc.json, resp.body, "Accept %q", accept)
			}
			for _, accept := range []string{browserAccept, "text/html"} {
				resp := sendRaw(t, tc.method, c.url(tc.path), "x=1", append([]string{"Accept", accept}, tc.header...)...)
				assert.Equal(t, tc.status, resp.StatusCode, "Accept %q", accept)
				assertPage(t, resp, tc.heading)
				assert.Contains(t, markup(resp.body), tc.says)
				assert.Contains(t, markup(resp.body), tc.link)
				if tc.status == http.StatusMethodNotAllowed {
					assert.Equal(t, "POST", resp.Header.Get("Allow"))
				}
			}
		})
	}
	// A HEAD gets the page's status and headers, without the page.
	resp := sendRaw(t, http.MethodHead, c.url("/api/auth/me"), "", "Accept", browserAccept)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Empty(t, resp.body)
}

// A throttled login, from the form, says when to try again, as
// Retry-After does; a script gets the same JSON as before.
func TestThrottledLoginPageSaysWhenToTryAgain(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: "max_failed_logins_per_account 1"})
	b := newBrowser(t)
	form := url.Values{"username": {"alice"}, "password": {"a wrong guess"}, "redirect": {"/docs/"}}
	require.Equal(t, http.StatusUnauthorized, b.submit(c, "/login", form, "/login?redirect=%2Fdocs%2F").StatusCode)

	form.Set("password", "correct horse battery")
	resp := b.submit(c, "/login", form, "/login?redirect=%2Fdocs%2F")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, markup(resp.body))
	assert.Contains(t, []string{"899", "900"}, resp.Header.Get("Retry-After"), "the 15-minute window")
	assertPage(t, resp, "Too many attempts")
	assert.Contains(t, markup(resp.body), `<p class="eyebrow">Error 429</p>`)
	assert.Contains(t, markup(resp.body), "Too many failed logins, try again later.")
	assert.Contains(t, markup(resp.body), "Try again in 15 minutes.")
	assert.Contains(t, markup(resp.body), `<a href="/login?redirect=%2Fdocs%2F" class="button">Go back</a>`, "back to the form it came from")
	assert.Contains(t, markup(resp.body), `<a href="/">Go to the home page</a>`)
	assert.Empty(t, b.cookie(c))

	resp = postLoginJSON(t, c, "alice", "correct horse battery")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.JSONEq(t, `{"error":"Too many failed logins, try again later"}`, resp.body)
}

// Opening the sign-out address asks, and the page's button signs out; the
// login page then says so. A script opening it gets the old 405.
func TestLogoutPageAsksThenSignsOut(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")

	resp := b.getPage(c.url("/logout"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assertPage(t, resp, "Sign out?")
	assert.Contains(t, markup(resp.body), "You are signed in as alice.")
	assert.Contains(t, markup(resp.body), "<form method=\"post\" action=\"/logout\">\n<button type=\"submit\">Sign out</button>\n</form>")
	assert.Contains(t, markup(resp.body), `<a href="/">Stay signed in</a>`)
	assert.Equal(t, http.StatusOK, b.get(c.url("/api/auth/me")).StatusCode, "asking does not sign out")

	// The button: a same-origin form POST, which the origin check lets
	// through. The session ends at once; the page moves on to the login
	// page, which clears the cookie (see signedOut for why not this one).
	resp = b.submit(c, "/logout", nil, "/logout")
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assertPage(t, resp, "Signing out…")
	assert.Equal(t, "0; url=/login?done=signed-out", resp.Header.Get("Refresh"))
	assert.Contains(t, markup(resp.body), `<a href="/login?done=signed-out"`, "and a link, for a browser that does not refresh")
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.sessions`), "the session is ended")

	resp = b.getPage(c.url("/login?done=signed-out"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, b.cookie(c), "the login page clears the cookie")
	assert.Equal(t, `"cookies"`, resp.Header.Get("Clear-Site-Data"))
	assert.Contains(t, markup(resp.body), `<p class="notice" role="status">You have been signed out</p>`)
	assert.Contains(t, markup(resp.body), `name="password"`, "with the form to sign in again")

	// The notice comes from a fixed list: the query cannot write on the page.
	for _, done := range []string{"", "<script>alert(1)</script>", "You have been signed out", "signed-out2"} {
		page := b.getPage(c.url("/login?done=" + url.QueryEscape(done)))
		assert.NotContains(t, markup(page.body), `role="status"`, "done=%q", done)
		assert.NotContains(t, markup(page.body), "<script>", "done=%q", done)
	}

	resp = b.getPage(c.url("/logout"))
	assertPage(t, resp, "You are not signed in")
	assert.Contains(t, markup(resp.body), `<a href="/login" class="button">Sign in</a>`)
	assert.NotContains(t, markup(resp.body), "<form")

	// A cross-site page cannot sign anyone out, not even with the page's form.
	b.login(c, "alice", "correct horse battery")
	resp = b.do(webtest.Request(t, http.MethodPost, c.url("/logout"), nil, "Accept", browserAccept,
		"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assertPage(t, resp, "Not allowed")
	assert.Equal(t, http.StatusOK, b.get(c.url("/api/auth/me")).StatusCode)

	resp = b.get(c.url("/logout"))
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "POST", resp.Header.Get("Allow"))
	assert.JSONEq(t, `{"error":"Method not allowed"}`, resp.body)
}

// site_name names the site on every page of the plugin.
func TestSiteNameNamesThePages(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: `site_name "Example Docs & Co"`})
	b := newBrowser(t)

	resp := b.getPage(c.url("/login"))
	assert.Contains(t, markup(resp.body), "<title>Sign in to Example Docs &amp; Co</title>")
	assert.Contains(t, markup(resp.body), `<h1 id="login-title">Sign in to Example Docs &amp; Co</h1>`)

	resp = b.getPage(c.url("/logout"))
	assert.Contains(t, markup(resp.body), "<title>You are not signed in · Example Docs &amp; Co</title>")
	assert.Contains(t, markup(resp.body), `<a href="/">Go to Example Docs &amp; Co</a>`)

	resp = sendRaw(t, http.MethodGet, c.url("/api/auth/me"), "", "Accept", browserAccept)
	assert.Contains(t, markup(resp.body), "<title>Please sign in · Example Docs &amp; Co</title>")

	b.login(c, "alice", "correct horse battery")
	resp = b.getPage(c.url("/account"))
	assert.Contains(t, markup(resp.body), "<title>Your account · Example Docs &amp; Co</title>")
	assert.Contains(t, markup(resp.body), "Back to Example Docs &amp; Co</a>")
	resp = b.getPage(c.url("/logout"))
	assert.Contains(t, markup(resp.body), "<title>Sign out? · Example Docs &amp; Co</title>")

	resp = newBrowser(t).getPage(startSite(t, siteOptions{db: db.url}).url("/login"))
	assert.Contains(t, markup(resp.body), "<title>Sign in</title>", "without site_name, the page is just Sign in")
}

// After a failed login with the name filled in, the password is what to
// type again, so it has the focus; without a name, the name has it.
func TestFailedLoginFocusesThePassword(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)

	focused := func(page string) []string {
		var ids []string
		for _, id := range []string{"username", "password"} {
			if strings.Contains(tag(t, page, id), " autofocus") {
				ids = append(ids, id)
			}
		}
		return ids
	}
	assert.Equal(t, []string{"username"}, focused(b.getPage(c.url("/login")).body))

	resp := b.submit(c, "/login", url.Values{"username": {"alice"}, "password": {"wrong password"}}, "/login")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, []string{"password"}, focused(resp.body))
	assert.Contains(t, tag(t, resp.body, "password"), `aria-invalid="true" aria-describedby="login-error"`)
	assert.Contains(t, tag(t, resp.body, "username"), `value="alice"`)

	resp = b.submit(c, "/login", url.Values{"username": {""}, "password": {"wrong password"}}, "/login")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, []string{"username"}, focused(resp.body))
}

// The account page links back to the site: its home page by default, or
// the home option's.
func TestAccountPageLinksBackToTheSite(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	for _, tc := range []struct {
		handler, link string
	}{
		{"", `<a href="/"><span aria-hidden="true">←</span> Back to the site</a>`},
		{"home /docs/?lang=en\nsite_name Docs", `<a href="/docs/?lang=en"><span aria-hidden="true">←</span> Back to Docs</a>`},
	} {
		c := startSite(t, siteOptions{db: db.url, handler: tc.handler})
		b := newBrowser(t)
		b.login(c, "alice", "correct horse battery")
		resp := b.getPage(c.url("/account"))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, markup(resp.body), tc.link, "with %q", tc.handler)
	}
}

// The account page shows each error by the form it belongs to, marks the
// field at fault, and names each session's button after its device.
func TestAccountErrorsShowByTheirForms(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	laptop, phone := newBrowser(t), newBrowser(t)
	laptop.login(c, "alice", "correct horse battery")
	resp := phone.do(webtest.JSONRequest(t, http.MethodPost, c.url("/api/auth/login"),
		map[string]string{"username": "alice", "password": "correct horse battery"}, "User-Agent",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)

	// Each form's answer is a redirect back to the page, which shows the outcome.
	post := func(form url.Values) reply {
		t.Helper()
		resp := laptop.submit(c, "/account", form, "/account")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
		return laptop.getPage(c.url(resp.Header.Get("Location")))
	}
	for _, tc := range []struct {
		name, field, describedBy string
		form                     url.Values
	}{
		{"a wrong current password", "current-password", "password-error",
			url.Values{"action": {"password"}, "current_password": {"wrong"}, "new_password": {"another password"}}},
		{"a new password too short", "new-password", "password-error new-password-hint",
			url.Values{"action": {"password"}, "current_password": {"correct horse battery"}, "new_password": {"short"}}},
	} {
		resp := post(tc.form)
		form := section(t, resp.body, "password-title")
		assert.Regexp(t, `<p id="password-error" class="alert" role="alert">[^<]+</p>\n<form`, form, tc.name)
		assert.Contains(t, tag(t, form, tc.field), `aria-invalid="true" aria-describedby="`+tc.describedBy+`"`, tc.name)
		assert.Equal(t, 1, strings.Count(markup(resp.body), `aria-invalid="true"`), "%s: only the field at fault is marked", tc.name)
		assert.NotContains(t, section(t, resp.body, "sessions-title"), `role="alert"`, tc.name)
	}

	// A session that ended in the meantime: the error is by the list.
	resp = post(url.Values{"action": {"revoke"}, "handle": {"00000000-0000-0000-0000-000000000000"}})
	sessions := section(t, resp.body, "sessions-title")
	assert.Contains(t, sessions, `<p id="sessions-error" class="alert" role="alert">That session had already ended</p>`)
	assert.Contains(t, sessions, `aria-describedby="sessions-error"`)
	assert.NotContains(t, section(t, resp.body, "password-title"), `role="alert"`)
	assert.NotContains(t, markup(resp.body), "aria-invalid")

	// The phone's button says what it does, and is told apart from any
	// other by its device and address.
	buttons := regexp.MustCompile(`<button [^>]*>Sign out this device</button>`).FindAllString(sessions, -1)
	require.Len(t, buttons, 1, "one button, for the other session:\n%s", sessions)
	assert.NotContains(t, buttons[0], "aria-label")
	ids := strings.Fields(regexp.MustCompile(`aria-describedby="([^"]+)"`).FindStringSubmatch(buttons[0])[1])
	var description []string
	for _, id := range ids {
		description = append(description, regexp.MustCompile(`id="` + id + `"[^>]*>([^<]*)<`).FindStringSubmatch(sessions)[1])
	}
	assert.Equal(t, []string{"Safari on iPhone", "127.0.0.1"}, description)
}

// The demo site links to the account page, and its header wraps rather
// than overflow a phone's screen.
func TestDemoSiteLinksToTheAccountAndFitsAPhone(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "demo", "demo's long password")
	c := startSite(t, siteOptions{db: db.url, handler: "public /assets/*", next: fileServer(t, "demo/site")})
	b := newBrowser(t)
	b.login(c, "demo", "demo's long password")
	for _, page := range []string{"/", "/how-it-works.html"} {
		resp := b.getPage(c.url(page))
		require.Equal(t, http.StatusOK, resp.StatusCode, page)
		assert.Contains(t, markup(resp.body), `<a href="/account">Your account</a>`, page)
		resp = b.getPage(c.url("/account"))
		assert.Equal(t, http.StatusOK, resp.StatusCode, "the link leads to the account page")
	}

	css := newBrowser(t).get(c.url("/assets/style.css")).body
	rule := func(selector string) string {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(selector) + ` \{([^}]*)\}`).FindStringSubmatch(css)
		require.NotNil(t, m, "no rule for %s in the demo's CSS", selector)
		return m[1]
	}
	// At 375 px the brand, three links, the name and the button do not fit
	// on one line: the bar and its links wrap, and nothing in it refuses
	// to shrink.
	assert.Contains(t, rule(".bar"), "flex-wrap: wrap")
	assert.Contains(t, rule(".bar nav"), "flex-wrap: wrap")
	assert.Contains(t, rule(".bar nav"), "min-width: 0")
	assert.Contains(t, rule(".bar form"), "min-width: 0")
	assert.Contains(t, rule(".who"), "text-overflow: ellipsis")
	assert.Regexp(t, `@media \(max-width: 40rem\) \{\s*\.bar nav \{ order: 3; flex-basis: 100%; \}`, css,
		"on a phone the links take a row of their own")

	// And the demo's Caddyfile, which names the site, adapts.
	caddyfile, err := os.ReadFile("demo/Caddyfile")
	require.NoError(t, err)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile, map[string]any{"filename": "demo/Caddyfile"})
	require.NoError(t, err)
	assert.Contains(t, string(cfg), `"site_name":"Members’ area"`)
}
