package pgsession

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/smtptest"
)

// verify_email on: a registration gives an address and gets no session;
// its sign-ins are refused, with a fresh link now and then, until the link
// is used; users without an address are not affected.
func TestVerifyEmailKeepsANewAccountOutUntilItsLinkIsUsed(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{TLS: "off"})
	db := newTestDB(t)
	s := startSite(t, siteOptions{db: db.url, smtp: srv, handler: "registration on\nverify_email on"})
	const password = "correct horse battery"

	page := newBrowser(t).getPage(s.url("/login"))
	assertPageHas(t, page.body, `name="email"`, "the registration form asks for the address")

	b := newBrowser(t)
	for _, bad := range []map[string]string{{"username": "carol", "password": password},
		{"username": "carol", "password": password, "email": "not an address"}} {
		resp := b.postJSON(s.url("/api/auth/register"), bad)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%v: %s", bad, resp.body)
	}
	resp := b.postJSON(s.url("/api/auth/register"), map[string]string{"username": "carol", "password": password,
		"email": "Carol@Example.com"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	assert.Contains(t, resp.json(t)["message"], "Check your mail")
	assert.Equal(t, "carol@example.com", resp.json(t)["email"])
	assert.Empty(t, b.cookie(s), "no session starts")
	first := verifyLinkIn(t, srv, "carol@example.com")

	taken := b.postJSON(s.url("/api/auth/register"), map[string]string{"username": "dave", "password": password,
		"email": "carol@example.com"})
	assert.Equal(t, http.StatusConflict, taken.StatusCode, taken.body)
	_, err := db.store.GetUserByName(context.Background(), "dave")
	assert.Error(t, err, "no account is left behind")

	refused := postLoginJSON(t, s, "carol", password)
	assert.Equal(t, http.StatusForbidden, refused.StatusCode, refused.body)
	assert.Contains(t, refused.json(t)["error"], "not verified")
	assert.Equal(t, http.StatusUnauthorized, postLoginJSON(t, s, "carol", "wrong password").StatusCode,
		"a wrong password is told as ever")
	form := newBrowser(t).postPage(s.url("/login"), url.Values{"username": {"carol"}, "password": {password}})
	assert.Equal(t, http.StatusForbidden, form.StatusCode)
	assertPageHas(t, form.body, "Your email address is not verified yet")
	assert.Equal(t, 1, countMailsTo(t, srv, "carol@example.com"), "no new link within minutes of the last")

	// Some minutes later, a refused sign-in mails a fresh link, which ends the first.
	_, err = db.pool.Exec(context.Background(), `UPDATE pgsession.account_links_sent SET sent_at = now() - interval '6 minutes'`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, postLoginJSON(t, s, "carol", password).StatusCode)
	require.Eventually(t, func() bool { return countMailsTo(t, srv, "carol@example.com") == 2 }, smtptest.WaitTimeout, 20*time.Millisecond)
	var fresh string
	for _, m := range srv.Messages(t) {
		if link := verifyLink.FindString(mailText(t, m)); link != "" && link != first {
			fresh = link
		}
	}
	require.NotEmpty(t, fresh)
	assert.Equal(t, http.StatusNotFound, newBrowser(t).postPage(first, url.Values{}).StatusCode, "the newer link ends the older")

	done := newBrowser(t).postPage(fresh, url.Values{})
	require.Equal(t, http.StatusOK, done.StatusCode, done.body)
	assertPageHas(t, done.body, "carol@example.com is verified")
	b.login(s, "carol", password)
	assert.NotEmpty(t, b.cookie(s))

	// A user with no address at all signs in as ever.
	db.addUser(t, "erin", password)
	newBrowser(t).login(s, "erin", password)

	// A registration from the form gets a page saying to check the mail.
	reg := newBrowser(t).postPage(s.url("/api/auth/register"), url.Values{"username": {"frank"}, "password": {password},
		"email": {"frank@example.com"}})
	assert.Equal(t, http.StatusCreated, reg.StatusCode, reg.body)
	assertPageHas(t, reg.body, "Check your mail")
	verifyLinkIn(t, srv, "frank@example.com")
	assert.NotContains(t, s.logs(), "token=")
}

// Without verify_email, a registration takes no address and signs in.
func TestRegistrationWithoutVerifyEmailTakesNoAddress(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{db: newTestDB(t).url, handler: "registration on"})
	resp := newBrowser(t).postJSON(s.url("/api/auth/register"), map[string]string{"username": "carol",
		"password": "correct horse battery", "email": "carol@example.com"})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "an unknown field, as before")
	assertPageLacks(t, newBrowser(t).getPage(s.url("/login")).body, `name="email"`)
}

// An admin sets an address by the admin API, verified, and by the command
// line; the user JSON shows it.
func TestAdminAndCommandLineSetAddresses(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	admin := randomHex(t, 20)
	s := startSite(t, siteOptions{db: db.url, handler: "admin_token \"" + admin + "\""})
	alice, bob := db.addUser(t, "alice", "correct horse battery"), db.addUser(t, "bob", "correct horse battery")
	patch := func(name string, body any) reply {
		return newBrowser(t).send(http.MethodPatch, s.url("/api/auth/admin/users/"+name), body, "Authorization", "Bearer "+admin)
	}
	resp := patch("alice", map[string]string{"email": " Alice@Example.com"})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	address, verified := db.email(t, alice)
	assert.Equal(t, "alice@example.com", address)
	assert.True(t, verified, "an admin's address counts as verified")

	assert.Equal(t, http.StatusConflict, patch("bob", map[string]string{"email": "alice@example.com"}).StatusCode)
	assert.Equal(t, http.StatusBadRequest, patch("bob", map[string]string{"email": "not an address"}).StatusCode)
	assert.Equal(t, http.StatusBadRequest, patch("bob", map[string]any{"email": "a@example.com", "password": "x"}).StatusCode)
	assert.Equal(t, http.StatusNotFound, patch("nobody", map[string]string{"email": "n@example.com"}).StatusCode)

	list := newBrowser(t).get(s.url("/api/auth/admin/users"), "Authorization", "Bearer "+admin).list(t)
	require.Len(t, list, 2)
	assert.Equal(t, "alice@example.com", list[0]["email"])
	assert.Equal(t, true, list[0]["email_verified"])
	assert.Equal(t, "", list[1]["email"])
	assert.Equal(t, false, list[1]["email_verified"])

	require.Equal(t, http.StatusOK, patch("alice", map[string]string{"email": ""}).StatusCode)
	address, _ = db.email(t, alice)
	assert.Empty(t, address, "cleared")

	assert.Contains(t, cliOK(t, db.url, "", "user", "email", "bob", "bob@example.com"), "bob@example.com")
	address, verified = db.email(t, bob)
	assert.Equal(t, "bob@example.com", address)
	assert.True(t, verified)
	assert.Contains(t, cliOK(t, db.url, "", "user", "list"), "bob@example.com")
}

// verify_email on without the smtp global option is refused: no new
// account could ever sign in.
func TestVerifyEmailNeedsSMTP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ app, want string }{
		{"", "verify_email on needs smtp in the pg_session global option"},
		{"smtp {\n host 127.0.0.1\n port 2525\n from site@example.com\n tls off\n}", ""},
	} {
		app := new(App)
		require.NoError(t, app.UnmarshalCaddyfile(caddyfile.NewTestDispenser(
			"pg_session {\n database_url postgres://127.0.0.1/app\n"+tc.app+"\n}")))
		h := new(Handler)
		require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("pg_session {\n verify_email on\n}")))
		if err := h.checkWith(app); tc.want == "" {
			assert.NoError(t, err)
		} else {
			assert.ErrorContains(t, err, tc.want)
		}
	}
}
