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

	"github.com/pgsession/caddy-pgsession/internal/smtptest"
)

// Invitations on the admin page: made through its form (the link shown
// once, as the site has no mail), listed with their state, revoked after
// confirming.

func TestAdminPageInvitations(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	_, err := s.db.store.CreateGroup(t.Context(), "staff")
	require.NoError(t, err)

	page := s.admin.getPage(s.site.url("/admin/invitations"))
	require.Equal(t, http.StatusOK, page.StatusCode)
	assert.Contains(t, mainOf(page.body), `<a href="/admin/invitations" aria-current="page">Invitations</a>`)
	assert.Contains(t, mainOf(page.body), "No invitations yet.")
	assert.Contains(t, mainOf(page.body), `After 7 days (the default)`)

	made := s.post("/admin/invitations", url.Values{"email": {"Carol@Example.com"}, "group": {"staff"}, "expires": {"3d"}})
	require.Equal(t, http.StatusOK, made.StatusCode, mainOf(made.body))
	m := regexp.MustCompile(`<code id="invitation-link">([^<]+)</code>`).FindStringSubmatch(made.body)
	require.NotNil(t, m, "the link is shown, as it was not mailed: %s", mainOf(made.body))
	link := html.UnescapeString(m[1])
	assert.True(t, strings.HasPrefix(link, s.site.url("/login/invitation?token=")), link)
	assert.NotContains(t, s.site.logs(), parseURL(t, link).Query().Get("token"), "the link is never logged")

	list, err := s.db.store.ListInvitations(t.Context(), true)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "carol@example.com", list[0].Email)
	assert.Equal(t, []string{"staff"}, list[0].Groups)
	assert.Equal(t, "root", list[0].CreatedByName)
	assert.WithinDuration(t, time.Now().Add(72*time.Hour), list[0].ExpiresAt, time.Minute)
	assert.Equal(t, http.StatusOK, newBrowser(t).getPage(link).StatusCode, "the link opens the invitation page")

	page = s.admin.getPage(s.site.url("/admin/invitations"))
	assert.Contains(t, mainOf(page.body), "carol@example.com")
	assert.NotContains(t, page.body, "invitation-link", "the link is shown only once")

	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		says   string
	}{
		{"a bad address", url.Values{"email": {"not an address"}}, http.StatusBadRequest, "address"},
		{"an expiry not offered", url.Values{"expires": {"1000d"}}, http.StatusBadRequest, "Choose when"},
		{"a group that is not there", url.Values{"group": {"nope"}}, http.StatusNotFound, "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.post("/admin/invitations", tc.form)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Contains(t, mainOf(resp.body), `role="alert"`)
			assert.Contains(t, mainOf(resp.body), tc.says)
			assert.NotContains(t, resp.body, "invitation-link")
			assert.Equal(t, 1, s.db.count(t, `SELECT count(*) FROM pgsession.user_invitations`), "no invitation was made")
		})
	}

	// Revoking asks first, then the link no longer works.
	revoke := "/admin/invitations/" + list[0].ID + "/revoke"
	assert.Contains(t, mainOf(page.body), `action="`+revoke+`"`)
	ask := s.post(revoke, nil)
	assert.Equal(t, http.StatusOK, ask.StatusCode)
	assert.Contains(t, mainOf(ask.body), "Revoke this invitation?")
	assert.Contains(t, mainOf(ask.body), `href="/admin/invitations" class="button secondary">Cancel</a>`)
	_, err = s.db.store.PeekInvitation(t.Context(), parseURL(t, link).Query().Get("token"))
	require.NoError(t, err, "asking revokes nothing")
	page = s.then(s.post(revoke, url.Values{"confirm": {"yes"}}))
	assert.Equal(t, "Invitation revoked", statusMessage(page.body))
	_, err = s.db.store.PeekInvitation(t.Context(), parseURL(t, link).Query().Get("token"))
	assert.Error(t, err, "the link is dead")
	again := s.post(revoke, url.Values{"confirm": {"yes"}})
	assert.Equal(t, http.StatusNotFound, again.StatusCode)
	assert.Contains(t, mainOf(again.body), "No such invitation")
}

func TestAdminPageShowsAUsedInvitation(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	made := s.post("/admin/invitations", url.Values{})
	m := regexp.MustCompile(`<code id="invitation-link">([^<]+)</code>`).FindStringSubmatch(made.body)
	require.NotNil(t, m)
	token := parseURL(t, html.UnescapeString(m[1])).Query().Get("token")
	_, err := s.db.store.AcceptInvitation(t.Context(), token, "dave", "dave's long password")
	require.NoError(t, err)

	page := s.admin.getPage(s.site.url("/admin/invitations"))
	assert.Contains(t, mainOf(page.body), "anyone with the link")
	assert.Contains(t, mainOf(page.body), "used by dave")
	assert.NotContains(t, mainOf(page.body), "/revoke", "a used invitation cannot be revoked")
	list, err := s.db.store.ListInvitations(t.Context(), true)
	require.NoError(t, err)
	resp := s.post("/admin/invitations/"+list[0].ID+"/revoke", url.Values{"confirm": {"yes"}})
	assert.Equal(t, http.StatusGone, resp.StatusCode)
	assert.Contains(t, mainOf(resp.body), "used already")
}

// With mail, an invitation for an address is mailed there, and the page
// says so without showing its link.
func TestAdminPageMailsAnInvitation(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{TLS: "off"})
	db := newTestDB(t)
	db.addAdmin(t, "root", rootPassword)
	s := adminPageSite{db: db, site: startSite(t, siteOptions{db: db.url, smtp: srv}), admin: newBrowser(t)}
	s.admin.login(s.site, "root", rootPassword)

	made := s.post("/admin/invitations", url.Values{"email": {"ada@example.com"}})
	assert.Equal(t, "/admin/invitations?done=invitation-mailed", made.Header.Get("Location"))
	page := s.then(made)
	assert.Equal(t, "Invitation made and mailed", statusMessage(page.body))
	assert.NotContains(t, page.body, "invitation-link")
	assert.NotContains(t, page.body, "token=")
	m := srv.WaitMessage(t, func(m smtptest.Message) bool { return len(m.To) == 1 && m.To[0] == "ada@example.com" })
	assert.Contains(t, m.Body, "/login/invitation?token=")
}
