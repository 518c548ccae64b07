package pgsession

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Invitations to create an account, told as the admin and the invitee
// live them: the admin makes a link, the invitee opens it, picks a name
// and a password and is signed in, once, on a site without registration.

const inviteAdminToken = "an admin token that is long enough to pass"

// inviteSite starts a site with the admin token and more lines of its
// block, on a database of its own with the group staff.
func inviteSite(t *testing.T, handler string) (*testDB, *testSite) {
	t.Helper()
	db := newTestDB(t)
	_, err := db.store.CreateGroup(t.Context(), "staff")
	require.NoError(t, err)
	return db, startSite(t, siteOptions{db: db.url, handler: `admin_token "` + inviteAdminToken + `"` + "\n" + handler})
}

// adminCall calls the admin API of s with the admin token.
func adminCall(t *testing.T, s *testSite, method, path, body string) reply {
	t.Helper()
	return sendRaw(t, method, s.url("/api/auth/admin"+path), body, "Content-Type", "application/json",
		"Authorization", "Bearer "+inviteAdminToken)
}

// createInvitation makes an invitation with the admin API and returns its
// link and id.
func createInvitation(t *testing.T, s *testSite, body string) (link, id string) {
	t.Helper()
	resp := adminCall(t, s, http.MethodPost, "/invitations", body)
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	inv := resp.json(t)
	link, _ = inv["url"].(string)
	return link, inv["id"].(string)
}

// tokenInput reads the token of the invitation page's form.
var tokenInput = regexp.MustCompile(`name="token" value="([^"]*)"`)

// acceptForm is the invitation page's form, filled in.
func acceptForm(t *testing.T, page reply, username, password, confirm string) url.Values {
	t.Helper()
	m := tokenInput.FindStringSubmatch(page.body)
	require.NotNil(t, m, "the form carries the token: %s", gist(page.body))
	return url.Values{"token": {html.UnescapeString(m[1])}, "username": {username}, "password": {password}, "confirm": {confirm}}
}

// openInvitation opens the link as a browser and expects its form.
func openInvitation(t *testing.T, b *browser, link string) reply {
	t.Helper()
	page := b.getPage(link)
	require.Equal(t, http.StatusOK, page.StatusCode, gist(page.body))
	assert.Equal(t, "no-referrer", page.Header.Get("Referrer-Policy"), "the page's address carries the token")
	assertPageHas(t, page.body, `<meta name="referrer" content="no-referrer">`)
	assertPageHas(t, page.body, `action="/login/invitation"`)
	return page
}

// The link makes one account, signed in at once and in the groups the
// admin chose, with registration off; it works once.
func TestAnInvitationMakesOneAccount(t *testing.T) {
	t.Parallel()
	db, s := inviteSite(t, "")
	assert.Equal(t, http.StatusNotFound, sendRaw(t, http.MethodPost, s.url("/api/auth/register"),
		`{"username":"x","password":"correct horse battery"}`, "Content-Type", "application/json").StatusCode, "registration is off")

	link, id := createInvitation(t, s, `{"groups":["staff"],"expires_in":"72h"}`)
	require.True(t, strings.HasPrefix(link, s.url("/login/invitation?token=")), link)
	assert.NotContains(t, s.logs(), strings.TrimPrefix(link, s.url("")), "the link is never logged")

	b := newBrowser(t)
	page := openInvitation(t, b, link)
	resp := b.postForm(s.url("/login/invitation"), acceptForm(t, page, "newbie", "correct horse battery", "correct horse battery"))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assert.Equal(t, "/", resp.Header.Get("Location"), "home")
	me := b.get(s.url("/api/auth/me")).json(t)
	assert.Equal(t, "newbie", me["username"])
	assert.Equal(t, []any{"staff"}, me["groups"])
	assert.Equal(t, "password", me["auth_method"])

	again := newBrowser(t).getPage(link)
	assert.Equal(t, http.StatusGone, again.StatusCode, "replayed: %s", gist(again.body))
	assertPageHas(t, again.body, "used already")
	resp = newBrowser(t).postForm(s.url("/login/invitation"), acceptForm(t, page, "second", "correct horse battery", "correct horse battery"))
	assert.Equal(t, http.StatusGone, resp.StatusCode)
	assert.Equal(t, 0, db.count(t, `SELECT count(*) FROM pgsession.users WHERE username = 'second'`))

	list := adminCall(t, s, http.MethodGet, "/invitations?used=true", "").list(t)
	require.Len(t, list, 1)
	assert.Equal(t, id, list[0]["id"])
	assert.Equal(t, "used", list[0]["status"])
	assert.Equal(t, "newbie", list[0]["used_by"])
	assert.Nil(t, list[0]["url"], "a list never shows a link")
	assert.Empty(t, adminCall(t, s, http.MethodGet, "/invitations", "").list(t), "used ones only when asked for")
}

// A refused name or password shows the form again with why, and leaves
// the invitation open; what no invitation could be is refused as such.
func TestAnInvitationSurvivesBadInput(t *testing.T) {
	t.Parallel()
	db, s := inviteSite(t, "")
	db.addUser(t, "alice", "correct horse battery")
	link, _ := createInvitation(t, s, `{}`)
	b := newBrowser(t)
	page := openInvitation(t, b, link)
	for _, tc := range []struct {
		name, username, password, confirm string
		status                            int
		says                              string
	}{
		{"taken name", "alice", "correct horse battery", "correct horse battery", http.StatusConflict, "not available"},
		{"look-alike name", "ALICE", "correct horse battery", "correct horse battery", http.StatusConflict, "not available"},
		{"weak password", "bob", "short", "short", http.StatusBadRequest, "shorter than"},
		{"passwords differ", "bob", "correct horse battery", "correct horse staple", http.StatusBadRequest, "differ"},
		{"no name", "", "correct horse battery", "correct horse battery", http.StatusBadRequest, "sername"},
	} {
		resp := b.postForm(s.url("/login/invitation"), acceptForm(t, page, tc.username, tc.password, tc.confirm))
		assert.Equal(t, tc.status, resp.StatusCode, "%s: %s", tc.name, gist(resp.body))
		assertPageHas(t, resp.body, tc.says, tc.name)
		assertPageHas(t, resp.body, `aria-invalid="true"`, tc.name)
		assert.NotNil(t, tokenInput.FindStringSubmatch(resp.body), "%s: the form again, with its token", tc.name)
	}
	assertNotSignedIn(t, b, s)

	for body, want := range map[string]int{
		`{"username":"bob","password":"correct horse battery"}`:                    http.StatusBadRequest,
		`{"token":"","username":"bob","password":"correct horse battery"}`:         http.StatusBadRequest,
		`{"token":"nonsense","username":"bob","password":"correct horse battery"}`: http.StatusNotFound,
		`{"token":1}`: http.StatusBadRequest,
		`not json`:    http.StatusBadRequest,
	} {
		resp := sendRaw(t, http.MethodPost, s.url("/login/invitation"), body, "Content-Type", "application/json")
		assert.Equal(t, want, resp.StatusCode, "%s: %s", body, resp.body)
	}
	missing := newBrowser(t).getPage(s.url("/login/invitation"))
	assert.Equal(t, http.StatusNotFound, missing.StatusCode, "a link without its token")

	resp := b.postForm(s.url("/login/invitation"), acceptForm(t, page, "bob", "correct horse battery", "correct horse battery"))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "still open after all that: %s", gist(resp.body))
	assertSignedInAs(t, b, s, "bob", "password")
}

// An expired link says so, and makes nothing.
func TestAnExpiredInvitationIsRefused(t *testing.T) {
	t.Parallel()
	db, s := inviteSite(t, "invitation_lifetime 1h")
	link, id := createInvitation(t, s, `{}`)
	b := newBrowser(t)
	page := openInvitation(t, b, link)
	inv := adminCall(t, s, http.MethodGet, "/invitations", "").list(t)[0]
	assert.Equal(t, "open", inv["status"])
	db.exec(t, `UPDATE pgsession.user_invitations SET created_at = now() - interval '2 hours',
		expires_at = now() - interval '1 second' WHERE id = $1`, id)

	gone := b.getPage(link)
	assert.Equal(t, http.StatusGone, gone.StatusCode, gist(gone.body))
	assertPageHas(t, gone.body, "has expired")
	resp := b.postForm(s.url("/login/invitation"), acceptForm(t, page, "late", "correct horse battery", "correct horse battery"))
	assert.Equal(t, http.StatusGone, resp.StatusCode)
	assertNotSignedIn(t, b, s)
	assert.Equal(t, "expired", adminCall(t, s, http.MethodGet, "/invitations", "").list(t)[0]["status"])
}

// The admin API makes, lists and revokes invitations, with the right
// status for each mistake; a revoked link opens nothing.
func TestAdminAPIManagesInvitations(t *testing.T) {
	t.Parallel()
	db, s := inviteSite(t, "")
	for body, want := range map[string]int{
		`{"email":"nobody"}`:            http.StatusBadRequest,
		`{"groups":["Staff"]}`:          http.StatusBadRequest,
		`{"groups":["missing"]}`:        http.StatusNotFound,
		`{"expires_in":"soon"}`:         http.StatusBadRequest,
		`{"expires_in":"-1h"}`:          http.StatusBadRequest,
		`{"expires_in":"400d"}`:         http.StatusBadRequest,
		`{"groups":"staff"}`:            http.StatusBadRequest,
		`{"email":"a@b.example","x":1}`: http.StatusBadRequest,
	} {
		resp := adminCall(t, s, http.MethodPost, "/invitations", body)
		assert.Equal(t, want, resp.StatusCode, "%s: %s", body, resp.body)
	}
	resp := adminCall(t, s, http.MethodPost, "/invitations", `{"email":"Ada@Example.com","groups":["staff"]}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	inv := resp.json(t)
	assert.Equal(t, "ada@example.com", inv["email"])
	assert.Equal(t, []any{"staff"}, inv["groups"])
	assert.Equal(t, "open", inv["status"])
	assert.NotEmpty(t, inv["url"], "without mail the admin gets the link to hand on")
	assert.Nil(t, inv["mailed"])
	id := inv["id"].(string)

	list := adminCall(t, s, http.MethodGet, "/invitations", "").list(t)
	require.Len(t, list, 1)
	assert.Equal(t, id, list[0]["id"])
	assert.Equal(t, http.StatusBadRequest, adminCall(t, s, http.MethodGet, "/invitations?used=maybe", "").StatusCode)

	assert.Equal(t, http.StatusOK, adminCall(t, s, http.MethodDelete, "/invitations/"+id, "").StatusCode)
	assert.Equal(t, http.StatusNotFound, adminCall(t, s, http.MethodDelete, "/invitations/"+id, "").StatusCode)
	assert.Equal(t, http.StatusNotFound, adminCall(t, s, http.MethodDelete, "/invitations/not-an-id", "").StatusCode)
	assert.Equal(t, http.StatusNotFound, newBrowser(t).getPage(inv["url"].(string)).StatusCode, "a revoked link")
	assert.Empty(t, adminCall(t, s, http.MethodGet, "/invitations", "").list(t))

	assert.Equal(t, http.StatusUnauthorized, sendRaw(t, http.MethodGet, s.url("/api/auth/admin/invitations"), "").StatusCode)

	// Both are in the audit trail, by name, with the invitation's id and never its link.
	for _, action := range []string{"invitation.create", "invitation.revoke"} {
		require.Eventually(t, func() bool {
			return db.count(t, `SELECT count(*) FROM pgsession.audit_log WHERE action = $1 AND target = $2 AND status < 300`, action, id) == 1
		}, 10*time.Second, 10*time.Millisecond, "no %s of %s in the audit trail", action, id)
	}
	token := strings.TrimPrefix(inv["url"].(string), s.url("/login/invitation?token="))
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.audit_log a WHERE a::text LIKE '%' || $1 || '%'`, token))
}

// The command line prints a link that works, for a site without mail.
func TestTheCommandLinePrintsAWorkingInvitation(t *testing.T) {
	t.Parallel()
	db, s := inviteSite(t, "")
	out := cliOK(t, db.url, "", "invite", "--url", s.url("/login"), "--group", "staff", "--expires", "2d", "--email", "cli@example.com")
	link := strings.TrimSpace(out)
	require.True(t, strings.HasPrefix(link, s.url("/login/invitation?token=")), out)

	listed := cliOK(t, db.url, "", "invite", "list")
	assert.Contains(t, listed, "open")
	assert.Contains(t, listed, "cli@example.com")
	assert.NotContains(t, listed, strings.TrimPrefix(link, s.url("/login/invitation?token=")), "the list shows no token")

	b := newBrowser(t)
	page := openInvitation(t, b, link)
	assertPageHas(t, page.body, "cli@example.com", "whom it is for")
	resp := b.postForm(s.url("/login/invitation"), acceptForm(t, page, "carol", "correct horse battery", "correct horse battery"))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, b, s, "carol", "password")
	assert.Equal(t, []string{"staff"}, db.userNamed(t, "carol").Groups)

	r := cliDB(t, db.url, "", "invite", "--email", "x@example.com")
	assert.ErrorContains(t, r.err, "--url")
	r = cliDB(t, db.url, "", "invite", "--url", s.url("/login"), "--group", "missing")
	assert.ErrorContains(t, r.err, "missing")
	_, id := createInvitation(t, s, `{}`)
	assert.Contains(t, cliOK(t, db.url, "", "invite", "revoke", id), "revoked")
	assert.Error(t, cliDB(t, db.url, "", "invite", "revoke", id).err)
}
