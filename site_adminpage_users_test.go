package pgsession

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The admin page as an admin uses it, through its HTML forms over real
// HTTP: find a user, create one, change one, end their sessions, delete
// them after confirming. Each form is sent as a browser sends it, from the
// page's own origin.

const rootPassword = "root password, long enough"

// adminPageSite is a site with an admin root, signed in on admin, and a
// user alice.
type adminPageSite struct {
	db    *testDB
	site  *testSite
	admin *browser
}

func startAdminPageSite(t *testing.T, handler string) adminPageSite {
	t.Helper()
	db := newTestDB(t)
	db.addAdmin(t, "root", rootPassword)
	db.addUser(t, "alice", alicePassword)
	s := adminPageSite{db: db, site: startSite(t, siteOptions{db: db.url, handler: handler}), admin: newBrowser(t)}
	s.admin.login(s.site, "root", rootPassword)
	return s
}

// post sends a form of the admin page as the admin's browser does.
func (s adminPageSite) post(path string, form url.Values) reply {
	s.admin.t.Helper()
	return s.admin.submit(s.site, path, form, "/admin")
}

// then opens the page the redirect after a form leads to.
func (s adminPageSite) then(resp reply) reply {
	s.admin.t.Helper()
	require.Equal(s.admin.t, http.StatusSeeOther, resp.StatusCode, resp.body)
	return s.admin.getPage(s.site.url(resp.Header.Get("Location")))
}

// mainOf is the <main> of a page, without the stylesheet of its head, so
// that a failed assertion shows what matters.
func mainOf(page string) string {
	if i := strings.Index(page, "<main"); i >= 0 {
		return page[i:]
	}
	return page
}

// statusMessage is the text of the page's role="status" message.
func statusMessage(page string) string {
	m := regexp.MustCompile(`role="status"[^>]*>([^<]*)<`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestAdminPageListsAndSearchesUsers(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	s.db.addUser(t, "Alicia", "alicia password")
	s.db.joinGroups(t, "alice", "staff")
	require.NoError(t, s.db.store.SetEmail(t.Context(), s.db.userNamed(t, "alice").ID, "alice@example.com", true))

	page := s.admin.getPage(s.site.url("/admin"))
	require.Equal(t, http.StatusOK, page.StatusCode, page.body)
	assert.Equal(t, "no-store", page.Header.Get("Cache-Control"))
	assert.Contains(t, page.Header.Get("Content-Security-Policy"), "default-src 'none'", "the plugin's own pages' policy")
	assert.Contains(t, page.Header.Get("Content-Security-Policy"), "form-action 'self'")
	for _, name := range []string{"root", "alice", "Alicia"} {
		assert.Contains(t, mainOf(page.body), `href="/admin/users/`+name+`"`, "%s is listed", name)
	}
	assert.Contains(t, mainOf(page.body), `<th scope="col">Groups</th>`)
	assert.Contains(t, mainOf(page.body), "staff")
	assert.Contains(t, mainOf(page.body), `<th scope="col">Email</th>`)
	assert.Contains(t, mainOf(page.body), "<td>alice@example.com</td>")
	assert.Contains(t, mainOf(s.admin.getPage(s.site.url("/admin/users/alice")).body), "<dd>alice@example.com</dd>")
	assert.Regexp(t, `<body>\s*<a class="skip-link" href="#content">`, page.body, "a skip link, first")

	found := s.admin.getPage(s.site.url("/admin?q=ALI"))
	assert.Contains(t, mainOf(found.body), `href="/admin/users/alice"`)
	assert.Contains(t, mainOf(found.body), `href="/admin/users/Alicia"`, "case aside")
	assert.NotContains(t, mainOf(found.body), `href="/admin/users/root"`)
	assert.Contains(t, mainOf(found.body), `value="ALI"`, "the search stays in its field")

	none := s.admin.getPage(s.site.url("/admin?q=%3Cscript%3E"))
	assert.Contains(t, mainOf(none.body), "No user’s name contains “&lt;script&gt;”", "the search is shown, escaped")
}

func TestAdminPageCreatesUsers(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")

	created := s.post("/admin/users", url.Values{"username": {"bob"}, "password": {"bob's new password"}, "is_admin": {"on"}})
	require.Equal(t, http.StatusSeeOther, created.StatusCode, created.body)
	assert.Equal(t, "/admin/users/bob?done=created", created.Header.Get("Location"))
	page := s.then(created)
	assert.Equal(t, "bob was created", statusMessage(page.body))
	bob := s.db.userNamed(t, "bob")
	assert.True(t, bob.IsAdmin)
	postLoginJSON(t, s.site, "bob", "bob's new password") // a password that works
	assert.Equal(t, http.StatusOK, postLoginJSON(t, s.site, "bob", "bob's new password").StatusCode)

	for _, tc := range []struct {
		name, username, password string
		status                   int
		message, field           string
	}{
		{"a short password", "carol", "pass123", http.StatusBadRequest, "shorter than 8", "new-password"},
		{"a taken name", "alice", "long enough password", http.StatusConflict, "already exists", "new-username"},
		{"a taken name in capitals", "ALICE", "long enough password", http.StatusConflict, "already exists", "new-username"},
		{"a name that looks like a taken one", "\u0430lice", "long enough password", http.StatusConflict, "looks like", "new-username"},
		{"no name", "", "long enough password", http.StatusBadRequest, "", "new-username"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.db.fingerprint(t)
			resp := s.post("/admin/users", url.Values{"username": {tc.username}, "password": {tc.password}})
			assert.Equal(t, tc.status, resp.StatusCode, resp.body)
			assert.Contains(t, mainOf(resp.body), `role="alert"`)
			assert.Contains(t, mainOf(resp.body), tc.message)
			assert.Regexp(t, `id="`+tc.field+`"[^>]*autofocus aria-invalid="true"`, resp.body, "the field at fault is marked")
			if tc.username != "" {
				assert.Contains(t, mainOf(resp.body), `value="`+tc.username+`"`, "the name is filled in again")
			}
			assert.NotContains(t, mainOf(resp.body), tc.password, "the password never is")
			assert.Equal(t, before, s.db.fingerprint(t), "nothing changed")
		})
	}
}

func TestAdminPageChangesAUser(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	alice := newBrowser(t)
	alice.login(s.site, "alice", alicePassword)

	// Admin rights, on and off.
	page := s.then(s.post("/admin/users/alice/admin", url.Values{"admin": {"on"}}))
	assert.Equal(t, "alice is now an admin", statusMessage(page.body))
	assert.True(t, s.db.userNamed(t, "alice").IsAdmin)
	assert.Equal(t, http.StatusOK, alice.getPage(s.site.url("/admin")).StatusCode, "alice may open the page now")
	page = s.then(s.post("/admin/users/alice/admin", url.Values{"admin": {"off"}}))
	assert.Equal(t, "alice is no longer an admin", statusMessage(page.body))
	assert.False(t, s.db.userNamed(t, "alice").IsAdmin)
	assert.Equal(t, http.StatusForbidden, alice.getPage(s.site.url("/admin")).StatusCode, "from her next request")

	// A password the store refuses changes nothing.
	resp := s.post("/admin/users/alice/password", url.Values{"password": {"short"}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Regexp(t, `id="password"[^>]*aria-invalid="true"`, resp.body)
	assert.Equal(t, http.StatusOK, alice.get(s.site.url("/api/auth/me")).StatusCode, "her session lives on")

	// A new password ends her sessions; the new one signs her in.
	page = s.then(s.post("/admin/users/alice/password", url.Values{"password": {"a new password for alice"}}))
	assert.Equal(t, "Password set; alice’s sessions were ended", statusMessage(page.body))
	assert.Equal(t, http.StatusUnauthorized, alice.get(s.site.url("/api/auth/me")).StatusCode, "her session ended")
	assert.Equal(t, http.StatusUnauthorized, postLoginJSON(t, s.site, "alice", alicePassword).StatusCode)
	assert.Equal(t, http.StatusOK, postLoginJSON(t, s.site, "alice", "a new password for alice").StatusCode)
	assert.Equal(t, http.StatusOK, s.admin.get(s.site.url("/api/auth/me")).StatusCode, "the admin's own session lives on")
}

func TestAdminPageGroups(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	_, err := s.db.store.CreateGroup(t.Context(), "staff")
	require.NoError(t, err)

	page := s.admin.getPage(s.site.url("/admin/users/alice"))
	assert.Contains(t, mainOf(page.body), `<option value="staff">staff</option>`, "a group she may join")
	page = s.then(s.post("/admin/users/alice/groups/join", url.Values{"group": {"staff"}}))
	assert.Equal(t, "alice was added to the group", statusMessage(page.body))
	assert.Equal(t, []string{"staff"}, s.db.userNamed(t, "alice").Groups)
	assert.Contains(t, mainOf(page.body), `<input type="hidden" name="group" value="staff">`, "a form to leave it")

	before := s.db.fingerprint(t)
	resp := s.post("/admin/users/alice/groups/join", url.Values{"group": {"nope"}})
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, mainOf(resp.body), "No such group")
	resp = s.post("/admin/users/alice/groups/join", url.Values{})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, mainOf(resp.body), "Choose a group")
	assert.Equal(t, before, s.db.fingerprint(t))
	assert.Equal(t, []string{"staff"}, s.db.userNamed(t, "alice").Groups)

	page = s.then(s.post("/admin/users/alice/groups/leave", url.Values{"group": {"staff"}}))
	assert.Equal(t, "alice was taken out of the group", statusMessage(page.body))
	assert.Empty(t, s.db.userNamed(t, "alice").Groups)
}

func TestAdminPageEndsSessions(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	alice := s.db.userNamed(t, "alice")
	laptop, handle := s.db.sessionInDB(t, alice)
	phone, _ := s.db.sessionInDB(t, alice)

	page := s.admin.getPage(s.site.url("/admin/users/alice"))
	assert.Contains(t, mainOf(page.body), `value="`+handle+`"`, "her sessions are listed by handle")
	assert.NotContains(t, mainOf(page.body), laptop, "never by token")
	list := s.admin.getPage(s.site.url("/admin"))
	assert.Regexp(t, `/admin/users/alice"[\s\S]*?<td>2</td>\s*</tr>`, list.body, "the list counts her two sessions")

	page = s.then(s.post("/admin/users/alice/sessions/end", url.Values{"session": {handle}}))
	assert.Equal(t, "The session was ended", statusMessage(page.body))
	assert.Equal(t, http.StatusUnauthorized, meStatus(t, s.site, laptop))
	assert.Equal(t, http.StatusOK, meStatus(t, s.site, phone))
	resp := s.post("/admin/users/alice/sessions/end", url.Values{"session": {handle}})
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "an ended session is no longer there")
	assert.Contains(t, mainOf(resp.body), "No such session")

	// Ending all of them asks first.
	ask := s.post("/admin/users/alice/sessions/end-all", nil)
	assert.Equal(t, http.StatusOK, ask.StatusCode)
	assert.Contains(t, mainOf(ask.body), "End all of alice’s sessions?")
	assert.Contains(t, mainOf(ask.body), `<input type="hidden" name="confirm" value="yes">`)
	assert.Contains(t, mainOf(ask.body), `href="/admin/users/alice" class="button secondary">Cancel</a>`)
	assert.Equal(t, http.StatusOK, meStatus(t, s.site, phone), "asking ends nothing")
	page = s.then(s.post("/admin/users/alice/sessions/end-all", url.Values{"confirm": {"yes"}}))
	assert.Equal(t, "All of alice’s sessions were ended", statusMessage(page.body))
	assert.Equal(t, http.StatusUnauthorized, meStatus(t, s.site, phone))
}

func TestAdminPageResetsSecondFactors(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	alice := s.db.userNamed(t, "alice")
	addTestPasskey(t, s.db, alice, "alice-key", "Laptop")
	token, _ := s.db.sessionInDB(t, alice)

	page := s.admin.getPage(s.site.url("/admin/users/alice"))
	assert.Contains(t, mainOf(page.body), "1 passkey")
	ask := s.post("/admin/users/alice/second-factors/reset", nil)
	assert.Contains(t, mainOf(ask.body), "Remove alice’s second factors?")
	factors, err := s.db.store.UserFactors(t.Context(), alice.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, factors.Passkeys, "asking removes nothing")

	page = s.then(s.post("/admin/users/alice/second-factors/reset", url.Values{"confirm": {"yes"}}))
	assert.Equal(t, "alice’s second factors were removed, and their sessions ended", statusMessage(page.body))
	factors, err = s.db.store.UserFactors(t.Context(), alice.ID)
	require.NoError(t, err)
	assert.Zero(t, factors.Passkeys)
	assert.Equal(t, http.StatusUnauthorized, meStatus(t, s.site, token))
	assert.Contains(t, mainOf(page.body), "alice has no second factor.")
}

func TestAdminPageDeletesAUserAfterConfirming(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	token, _ := s.db.sessionInDB(t, s.db.userNamed(t, "alice"))
	before := s.db.fingerprint(t)

	for _, form := range []url.Values{nil, {"confirm": {"no"}}} {
		ask := s.post("/admin/users/alice/delete", form)
		assert.Equal(t, http.StatusOK, ask.StatusCode)
		assert.Contains(t, mainOf(ask.body), "<h2 id=\"confirm-title\">Delete alice?</h2>")
		assert.Contains(t, mainOf(ask.body), "This ends their sessions")
		assert.Contains(t, mainOf(ask.body), `<form method="post" action="/admin/users/alice/delete"`)
		assert.Equal(t, before, s.db.fingerprint(t), "a POST without confirm=yes changes nothing")
	}

	deleted := s.post("/admin/users/alice/delete", url.Values{"confirm": {"yes"}})
	assert.Equal(t, "/admin?done=deleted", deleted.Header.Get("Location"))
	page := s.then(deleted)
	assert.Equal(t, "The user was deleted, and their sessions ended", statusMessage(page.body))
	assert.NotContains(t, mainOf(page.body), `href="/admin/users/alice"`)
	assert.Equal(t, http.StatusUnauthorized, meStatus(t, s.site, token))
	assert.Zero(t, s.db.count(t, `SELECT count(*) FROM pgsession.users WHERE username = 'alice'`))

	// Gone, she is not found, with a page that says so.
	for _, resp := range []reply{s.admin.getPage(s.site.url("/admin/users/alice")),
		s.post("/admin/users/alice/delete", url.Values{"confirm": {"yes"}})} {
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		assert.Contains(t, mainOf(resp.body), "No such user")
		assert.True(t, strings.Contains(resp.body, `href="/admin/users/root"`), "the list of users, to go on from")
	}
}
