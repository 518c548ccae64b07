package pgsession

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// Who may use the admin page: a signed-in admin's browser, from the page's
// own origin, and nobody else; every refusal changes nothing.

func TestAdminPageSendsAVisitorToSignInFirst(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	for _, path := range []string{"/admin", "/admin/users/alice"} {
		resp := newBrowser(t).getPage(s.site.url(path))
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode, path)
		assert.Equal(t, "/login?redirect="+url.QueryEscape(path), resp.Header.Get("Location"), "and back to %s after", path)
	}
	before := s.db.fingerprint(t)
	resp := newBrowser(t).submit(s.site, "/admin/users", url.Values{"username": {"mallory"}, "password": {"long enough password"}}, "/admin")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, before, s.db.fingerprint(t))
}

func TestAdminPageRefusesAUserWhoIsNoAdmin(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	alice := newBrowser(t)
	alice.login(s.site, "alice", alicePassword)

	page := alice.getPage(s.site.url("/admin"))
	assert.Equal(t, http.StatusForbidden, page.StatusCode)
	assert.Contains(t, mainOf(page.body), "You are signed in as alice, who is no admin")
	assert.Contains(t, mainOf(page.body), `<form method="post" action="/logout">`, "a way to sign in as someone else")
	assert.NotContains(t, mainOf(page.body), "/admin/users/root", "no user is shown")
	assert.Equal(t, http.StatusForbidden, alice.getPage(s.site.url("/admin/users/root")).StatusCode)

	before := s.db.fingerprint(t)
	for path, form := range map[string]url.Values{
		"/admin/users":                       {"username": {"mallory"}, "password": {"long enough password"}},
		"/admin/users/alice/admin":           {"admin": {"on"}},
		"/admin/users/root/delete":           {"confirm": {"yes"}},
		"/admin/users/root/password":         {"password": {"taken over now"}},
		"/admin/users/root/sessions/end-all": {"confirm": {"yes"}},
	} {
		resp := alice.submit(s.site, path, form, "/admin")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, path)
	}
	assert.Equal(t, before, s.db.fingerprint(t), "nothing changed")
	assert.False(t, s.db.userNamed(t, "alice").IsAdmin)

	// The account page links to the admin page for an admin only.
	assert.NotContains(t, alice.getPage(s.site.url("/account")).body, `href="/admin"`)
	assert.Contains(t, s.admin.getPage(s.site.url("/account")).body, `href="/admin"`)
}

func TestAdminPageRefusesCrossSiteForms(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	before := s.db.fingerprint(t)
	for _, header := range [][]string{
		{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"},
		{"Origin", "https://evil.example"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site", "Origin", "http://other.localhost"},
	} {
		for path, form := range map[string]url.Values{
			"/admin/users":              {"username": {"mallory"}, "password": {"long enough password"}, "is_admin": {"on"}},
			"/admin/users/alice/admin":  {"admin": {"on"}},
			"/admin/users/alice/delete": {"confirm": {"yes"}},
		} {
			req := formFrom(t, s.site.url(path), form, header...)
			resp := s.admin.do(req)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s from %v", path, header)
			assert.Contains(t, mainOf(resp.body), "another site", "%s from %v", path, header)
		}
	}
	assert.Equal(t, before, s.db.fingerprint(t), "nothing changed")
}

// formFrom is a form POST with the admin's cookie and header pairs, as a
// page of another site makes the browser send it.
func formFrom(t *testing.T, rawURL string, form url.Values, header ...string) *http.Request {
	t.Helper()
	return webtest.Request(t, http.MethodPost, rawURL, strings.NewReader(form.Encode()), append([]string{
		"Content-Type", "application/x-www-form-urlencoded", "Accept", browserAccept}, header...)...)
}

func TestAdminPageTakesNoToken(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	root := db.addAdmin(t, "root", rootPassword)
	db.addUser(t, "alice", alicePassword)
	site := startSite(t, siteOptions{db: db.url, handler: "admin_token " + testAdminToken})
	apiToken := db.addAPIToken(t, root, "script", nil, true)
	before := db.fingerprint(t)

	for name, header := range map[string][]string{
		"the admin token":         {"X-Admin-Token", testAdminToken},
		"the admin token, bearer": {"Authorization", "Bearer " + testAdminToken},
		"an admin's API token":    {"Authorization", "Bearer " + apiToken},
	} {
		t.Run(name, func(t *testing.T) {
			page := sendRaw(t, http.MethodGet, site.url("/admin"), "", append([]string{"Accept", browserAccept}, header...)...)
			assert.Equal(t, http.StatusSeeOther, page.StatusCode, "no session: the page sends the browser to sign in")
			assert.Equal(t, "/login?redirect=%2Fadmin", page.Header.Get("Location"))

			form := url.Values{"username": {"mallory"}, "password": {"long enough password"}}.Encode()
			resp := sendRaw(t, http.MethodPost, site.url("/admin/users"), form, append([]string{"Accept", browserAccept,
				"Content-Type", "application/x-www-form-urlencoded"}, header...)...)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			assert.Contains(t, mainOf(resp.body), "not a token")
			assert.Equal(t, before, db.fingerprint(t), "nothing changed")
		})
	}
	// The admin API, which takes the token, is still there.
	resp := sendRaw(t, http.MethodGet, site.url("/api/auth/admin/users"), "", "X-Admin-Token", testAdminToken)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestAdminPagePathIsAnOption(t *testing.T) {
	t.Parallel()
	moved := startAdminPageSite(t, "admin_path /manage/")
	page := moved.admin.getPage(moved.site.url("/manage"))
	require.Equal(t, http.StatusOK, page.StatusCode)
	assert.Contains(t, mainOf(page.body), `href="/manage/users/alice"`)
	created := moved.admin.submit(moved.site, "/manage/users", url.Values{"username": {"bob"}, "password": {"long enough password"}}, "/manage")
	assert.Equal(t, "/manage/users/bob?done=created", created.Header.Get("Location"))
	assert.Equal(t, "hello root", moved.admin.getPage(moved.site.url("/admin")).body, "/admin is the site's own path")

	off := startAdminPageSite(t, "admin_path off")
	assert.Equal(t, "hello root", off.admin.getPage(off.site.url("/admin")).body, "no admin page: the path is the site's")
	assert.NotContains(t, off.admin.getPage(off.site.url("/account")).body, `href="/admin"`, "nor a link to it")
	resp := off.admin.submit(off.site, "/admin/users", url.Values{"username": {"bob"}, "password": {"long enough password"}}, "/admin")
	assert.NotEqual(t, http.StatusSeeOther, resp.StatusCode)
	assert.Zero(t, off.db.count(t, `SELECT count(*) FROM pgsession.users WHERE username = 'bob'`))
}
