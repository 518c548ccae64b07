package pgsession

import (
	"html"
	"io"
	"mime/quotedprintable"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
	"github.com/pgsession/caddy-pgsession/internal/smtptest"
)

// Invitations that go by mail, and invitations taken up by signing in
// with an identity provider.

// An invitation for an address goes there by a real mail server, and the
// admin does not see its link; the link in the mail works once.
func TestAnInvitationByMail(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{TLS: "off"})
	db := newTestDB(t)
	s := startSite(t, siteOptions{db: db.url, smtp: srv,
		handler: `admin_token "` + inviteAdminToken + `"` + "\nsite_name \"Team Wiki\""})
	resp := adminCall(t, s, http.MethodPost, "/invitations", `{"email":"Ada@Example.com"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	inv := resp.json(t)
	assert.Nil(t, inv["url"], "a mailed link is not shown to the admin")
	assert.Equal(t, true, inv["mailed"])

	m := srv.WaitMessage(t, func(m smtptest.Message) bool { return len(m.To) == 1 && m.To[0] == "ada@example.com" })
	assert.Contains(t, m.Subject, "Team Wiki")
	text, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(m.Body)))
	require.NoError(t, err)
	link := regexp.MustCompile(`https?://\S+/login/invitation\?token=\S+`).FindString(string(text))
	require.NotEmpty(t, link, "the mail carries the link: %s", text)
	assert.NotContains(t, s.logs(), strings.TrimPrefix(link, s.url("")), "the link is never logged")

	b := newBrowser(t)
	page := openInvitation(t, b, link)
	assertPageHas(t, page.body, "ada@example.com", "whom it is for")
	resp = b.postForm(s.url("/login/invitation"), acceptForm(t, page, "ada", "correct horse battery", "correct horse battery"))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, b, s, "ada", "password")
	ada := db.userNamed(t, "ada")
	assert.Equal(t, "ada@example.com", ada.Email, "the address the invitation went to")
	assert.True(t, ada.EmailVerified)
	assert.Equal(t, http.StatusGone, newBrowser(t).getPage(link).StatusCode, "the mailed link works once")

	resp = adminCall(t, s, http.MethodPost, "/invitations", `{}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.NotEmpty(t, resp.json(t)["url"], "without an address there is nobody to mail: the admin gets the link")
}

// invitationProviderLink is the invitation page's link that starts a sign-in
// with provider, unescaped.
func invitationProviderLink(t *testing.T, page reply, provider string) string {
	t.Helper()
	m := regexp.MustCompile(`href="(/login/with/` + provider + `\?invitation=[^"]*)"`).FindStringSubmatch(page.body)
	require.NotNil(t, m, "the page offers %s: %s", provider, gist(page.body))
	return html.UnescapeString(m[1])
}

// The invitee may sign in with a provider instead of choosing a password:
// the account is made for that identity, in the invitation's groups, even
// though the provider's first sign-ins may not make accounts here. An
// identity linked to someone already is refused, and the invitation kept.
func TestAnInvitationTakenWithAProvider(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "ada-sub", Email: "ada@example.com", EmailVerified: true, PreferredUsername: "ada"})
	p.AddUser(t, oidctest.User{Subject: "alice-sub", Email: "alice@example.com", EmailVerified: true})
	db := newTestDB(t)
	_, err := db.store.CreateGroup(t.Context(), "staff")
	require.NoError(t, err)
	db.linkIdentity(t, db.addUser(t, "alice", "correct horse battery"), "alice-sub", "alice@example.com")
	s := startProviderSite(t, siteOptions{db: db.url, handler: `admin_token "` + inviteAdminToken + `"`}, p, "")

	outsider := newBrowser(t).signInWith(s, "test", "ada-sub", "/")
	assert.Equal(t, http.StatusForbidden, outsider.StatusCode, "without the invitation ada has no account: %s", gist(outsider.body))

	link, _ := createInvitation(t, s, `{"groups":["staff"]}`)
	b := newBrowser(t)
	start := invitationProviderLink(t, openInvitation(t, b, link), "test")
	begun := b.getPage(s.url(start))
	require.Equal(t, http.StatusSeeOther, begun.StatusCode, gist(begun.body))
	assert.Equal(t, "no-referrer", begun.Header.Get("Referrer-Policy"))
	taken := b.getPage(oidctest.SignIn(t, nil, begun.Header.Get("Location"), "alice-sub").String())
	assert.Equal(t, http.StatusConflict, taken.StatusCode, gist(taken.body))
	assertPageHas(t, taken.body, "Already linked to another account")
	assert.Equal(t, "open", adminCall(t, s, http.MethodGet, "/invitations", "").list(t)[0]["status"], "the invitation is kept")

	b = newBrowser(t)
	begun = b.getPage(s.url(invitationProviderLink(t, openInvitation(t, b, link), "test")))
	require.Equal(t, http.StatusSeeOther, begun.StatusCode, gist(begun.body))
	done := b.getPage(oidctest.SignIn(t, nil, begun.Header.Get("Location"), "ada-sub").String())
	require.Equal(t, http.StatusSeeOther, done.StatusCode, gist(done.body))
	assertSignedInAs(t, b, s, "ada", "provider")
	ada := db.userNamed(t, "ada")
	assert.Equal(t, []string{"staff"}, ada.Groups)
	assert.False(t, ada.HasPassword)

	assert.Equal(t, http.StatusGone, newBrowser(t).getPage(s.url(start)).StatusCode, "a used invitation starts no sign-in")
	assert.Equal(t, http.StatusNotFound, newBrowser(t).getPage(s.url("/login/with/test?invitation=nonsense")).StatusCode)
}
