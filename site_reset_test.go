package pgsession

import (
	"context"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/smtptest"
	"github.com/pgsession/caddy-pgsession/store"
)

// The story of a forgotten password: ask for a link by name or address,
// get it by mail, open it, choose a new password, and be signed in, with
// every other session ended and the old password gone.

// resetSite starts a site that mails through a test SMTP server of its own.
func resetSite(t *testing.T, db *testDB, opts siteOptions) (*testSite, *smtptest.Server) {
	t.Helper()
	srv := smtptest.Start(t, smtptest.Options{})
	opts.db, opts.smtp = db.url, srv
	return startSite(t, opts), srv
}

// addUserWithAddress adds name with the password "correct horse battery"
// and the verified address name@example.com.
func (db *testDB) addUserWithAddress(t *testing.T, name string) *store.User {
	t.Helper()
	u := db.addUser(t, name, "correct horse battery")
	require.NoError(t, db.store.SetEmail(context.Background(), u.ID, name+"@example.com", true))
	return u
}

// askForLink asks for a reset link with JSON, as a script would, and
// expects the one answer every name gets.
func askForLink(t *testing.T, s *testSite, login string, header ...string) {
	t.Helper()
	resp := sendRaw(t, http.MethodPost, s.url("/api/auth/password/forgot"), jsonText(t, map[string]string{"login": login}),
		append([]string{"Content-Type", "application/json"}, header...)...)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, resp.body)
	assert.JSONEq(t, `{"status":"sent"}`, resp.body)
}

var resetLinkPattern = regexp.MustCompile(`https?://\S+/login/reset\?token=[A-Za-z0-9_-]+`)

// mailBody is a message's text, its quoted-printable undone.
func mailBody(t *testing.T, m smtptest.Message) string {
	t.Helper()
	text, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(m.Body)))
	require.NoError(t, err)
	return string(text)
}

// waitResetLink waits for the n-th mail to address (counting from 1) and
// returns its reset link.
func waitResetLink(t *testing.T, srv *smtptest.Server, address string, n int) string {
	t.Helper()
	var m smtptest.Message
	require.Eventually(t, func() bool {
		var to []smtptest.Message
		for _, m := range srv.Messages(t) {
			if len(m.To) == 1 && m.To[0] == address {
				to = append(to, m)
			}
		}
		if len(to) < n {
			return false
		}
		m = to[n-1]
		return true
	}, smtptest.WaitTimeout, 20*time.Millisecond, "mail %d to %s", n, address)
	link := resetLinkPattern.FindString(mailBody(t, m))
	require.NotEmpty(t, link, "a reset link in:\n%s", mailBody(t, m))
	return link
}

// tokenOf is a reset link's token.
func tokenOf(t *testing.T, link string) string {
	u, err := url.Parse(link)
	require.NoError(t, err)
	return u.Query().Get("token")
}

// setPasswordByLink posts the reset page's form from browser b.
func setPasswordByLink(b *browser, s *testSite, link, password string) reply {
	return b.postForm(s.url("/login/reset"), url.Values{"token": {tokenOf(b.t, link)}, "password": {password}, "confirm": {password}})
}

func TestResetLinkArrivesAndWorksOnce(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s, srv := resetSite(t, db, siteOptions{handler: "site_name \"Example Docs\""})
	db.addUserWithAddress(t, "alice")
	earlier := []*browser{newBrowser(t), newBrowser(t)}
	for _, b := range earlier {
		b.login(s, "alice", "correct horse battery")
	}

	login := newBrowser(t).getPage(s.url("/login"))
	assertPageHas(t, login.body, `href="/login/forgot"`, "the login page offers a reset")
	b := newBrowser(t)
	page := b.getPage(s.url("/login/forgot"))
	require.Equal(t, http.StatusOK, page.StatusCode)
	assertPageHas(t, page.body, `name="login"`)
	resp := b.postForm(s.url("/login/forgot"), url.Values{"login": {"Alice@Example.com"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assertPageHas(t, resp.body, "If an account with a verified address matches, a link is on its way.")

	link := waitResetLink(t, srv, "alice@example.com", 1)
	m := srv.Messages(t)[0]
	assert.Equal(t, "Reset your password for Example Docs", m.Subject)
	body := mailBody(t, m)
	for _, want := range []string{"the account alice on Example Docs", "for 30 minutes", "If you did not ask for this, ignore this mail"} {
		assert.Contains(t, body, want)
	}
	assert.True(t, strings.HasPrefix(link, s.url("/login/reset?token=")), "an absolute link to this site: %s", link)
	assert.NotContains(t, s.logs(), tokenOf(t, link), "the link is a secret")

	form := b.getPage(link)
	require.Equal(t, http.StatusOK, form.StatusCode, form.body)
	assert.Equal(t, "no-referrer", form.Header.Get("Referrer-Policy"))
	assert.Equal(t, "no-store", form.Header.Get("Cache-Control"))
	assertPageHas(t, form.body, `value="`+tokenOf(t, link)+`"`)
	assertPageHas(t, form.body, "alice")
	again := b.getPage(link)
	require.Equal(t, http.StatusOK, again.StatusCode, "opening the link uses nothing (mail scanners open links)")

	done := setPasswordByLink(b, s, link, "a brand new password")
	require.Equal(t, http.StatusSeeOther, done.StatusCode, done.body)
	assert.Equal(t, "/", done.Header.Get("Location"))
	assertSignedInAs(t, b, s, "alice", store.MethodPassword)
	for _, old := range earlier {
		assert.Equal(t, http.StatusUnauthorized, meStatus(t, s, old.cookie(s)), "every earlier session ended")
	}
	assert.Equal(t, http.StatusUnauthorized, postLoginJSON(t, s, "alice", "correct horse battery").StatusCode)
	assert.Equal(t, http.StatusOK, postLoginJSON(t, s, "alice", "a brand new password").StatusCode)

	replay := newBrowser(t)
	used := replay.getPage(link)
	assert.Equal(t, http.StatusNotFound, used.StatusCode)
	assertPageHas(t, used.body, "This link was already used or is not valid")
	assertPageHas(t, used.body, `href="/login/forgot"`)
	assert.Equal(t, http.StatusNotFound, setPasswordByLink(replay, s, link, "the attacker's password").StatusCode)
	assertNotSignedIn(t, replay, s)
}

// Every name gets the same answer; only an account with a verified
// address gets mail. A known name's mail sent after the others shows that
// the queue got to them, and sent them nothing.
func TestForgotForAnUnknownNameSendsNoMail(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s, srv := resetSite(t, db, siteOptions{})
	db.addUser(t, "bob", "correct horse battery") // no address
	carol := db.addUser(t, "carol", "correct horse battery")
	require.NoError(t, db.store.SetEmail(context.Background(), carol.ID, "carol@example.com", false))
	db.addUserWithAddress(t, "alice")

	for _, login := range []string{"nobody", "nobody@example.com", "bob", "carol", "carol@example.com"} {
		askForLink(t, s, login)
	}
	askForLink(t, s, "alice")
	waitResetLink(t, srv, "alice@example.com", 1)
	assert.Len(t, srv.Messages(t), 1, "only alice got mail")
	assert.NotContains(t, s.logs(), "nobody", "the names typed are not logged")
}

func TestExpiredAndUsedLinksGetClearPages(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s, srv := resetSite(t, db, siteOptions{})
	alice := db.addUserWithAddress(t, "alice")
	askForLink(t, s, "alice")
	link := waitResetLink(t, srv, "alice@example.com", 1)
	db.exec(t, `UPDATE pgsession.account_tokens SET created_at = now() - interval '2 hours',
		expires_at = now() - interval '1 hour' WHERE user_id = $1`, alice.ID)

	b := newBrowser(t)
	page := b.getPage(link)
	assert.Equal(t, http.StatusGone, page.StatusCode)
	assertPageHas(t, page.body, "This link has expired")
	assertPageHas(t, page.body, `href="/login/forgot"`)
	assert.Equal(t, "no-referrer", page.Header.Get("Referrer-Policy"))
	resp := b.postJSON(s.url("/api/auth/password/reset"), map[string]string{"token": tokenOf(t, link), "password": "a brand new password"})
	assert.Equal(t, http.StatusGone, resp.StatusCode, resp.body)

	for _, bad := range []string{"", "short", strings.Repeat("A", 43)} {
		page := b.getPage(s.url("/login/reset?token=" + bad))
		assert.Equal(t, http.StatusNotFound, page.StatusCode, "token %q", bad)
		assertPageHas(t, page.body, "This link was already used or is not valid")
	}
	assert.Equal(t, http.StatusOK, postLoginJSON(t, s, "alice", "correct horse battery").StatusCode, "the password stayed")
}

// A newer link ends the older one, and so does a password change.
func TestNewerLinkOrPasswordChangeEndsALink(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s, srv := resetSite(t, db, siteOptions{})
	db.addUserWithAddress(t, "alice")
	askForLink(t, s, "alice")
	older := waitResetLink(t, srv, "alice@example.com", 1)
	askForLink(t, s, "alice@example.com")
	newer := waitResetLink(t, srv, "alice@example.com", 2)
	require.NotEqual(t, older, newer)

	b := newBrowser(t)
	assert.Equal(t, http.StatusNotFound, b.getPage(older).StatusCode, "the newer link ended the older")
	require.Equal(t, http.StatusOK, b.getPage(newer).StatusCode)

	b.login(s, "alice", "correct horse battery")
	resp := b.postJSON(s.url("/api/auth/password"), map[string]string{"current_password": "correct horse battery",
		"new_password": "changed on the account page"})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	page := newBrowser(t).getPage(newer)
	assert.Equal(t, http.StatusGone, page.StatusCode, "a password change ends the link")
}

// A reset proves the mailbox, not the authenticator: after it, a user
// with TOTP is asked for the code before any session starts.
func TestResetStillAsksForTheSecondFactor(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s, srv := resetSite(t, db, siteOptions{app: "secrets_key " + testSecretsKey})
	db.addUserWithAddress(t, "alice")
	b := newBrowser(t)
	b.login(s, "alice", "correct horse battery")
	secret, _ := enrolTOTP(t, s, b)

	askForLink(t, s, "alice")
	link := waitResetLink(t, srv, "alice@example.com", 1)
	fresh := newBrowser(t)
	resp := setPasswordByLink(fresh, s, link, "a brand new password")
	assertCodePage(t, fresh, s, resp, "/")
	code := fresh.postForm(s.url("/login/second-factor"), url.Values{"code": {laterCode(t, secret, 1)}, "redirect": {"/"}})
	require.Equal(t, http.StatusSeeOther, code.StatusCode, code.body)
	assertSignedInAs(t, fresh, s, "alice", store.MethodPasswordTOTP)
	assert.Equal(t, http.StatusUnauthorized, meStatus(t, s, b.cookie(s)), "the session from before the reset ended")
}

// Asking too often gets 429, the same for a real name and an unknown one:
// per name typed, and per client address.
func TestForgotIsThrottledAlikeForRealAndUnknownNames(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s, _ := resetSite(t, db, siteOptions{trustForwardedFor: true})
	db.addUserWithAddress(t, "alice")
	ask := func(login, ip string) reply {
		return sendRaw(t, http.MethodPost, s.url("/api/auth/password/forgot"), jsonText(t, map[string]string{"login": login}),
			"Content-Type", "application/json", "X-Forwarded-For", ip)
	}
	for i, login := range []string{"alice", "nobody"} {
		for j := range 3 {
			require.Equal(t, http.StatusAccepted, ask(login, "203.0.113."+string(rune('1'+i))+string(rune('0'+j))).StatusCode)
		}
		resp := ask(login, "203.0.113.99")
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s: %s", login, resp.body)
		assertRetryAfter(t, resp, 20*60)
	}
	for i := range 10 {
		require.Equal(t, http.StatusAccepted, ask("someone-"+string(rune('a'+i)), "198.51.100.7").StatusCode)
	}
	resp := ask("someone-else", "198.51.100.7")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, resp.body)
	assertRetryAfter(t, resp, 6*60)
}

// A mail server that is down holds up no answer; the link arrives once it
// is back.
func TestForgotWithTheMailServerDown(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s, srv := resetSite(t, db, siteOptions{})
	db.addUserWithAddress(t, "alice")
	srv.Stop()
	start := time.Now()
	askForLink(t, s, "alice")
	took := time.Since(start)
	srv.Start()
	link := waitResetLink(t, srv, "alice@example.com", 1)
	t.Logf("answered in %v with the mail server down", took)
	assert.Equal(t, http.StatusOK, newBrowser(t).getPage(link).StatusCode)
}

// Without the smtp option there is no reset: no link on the login page,
// and the routes refuse with 404.
func TestNoResetWithoutMail(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{db: newTestDB(t).url})
	b := newBrowser(t)
	assertPageLacks(t, b.getPage(s.url("/login")).body, "Forgot password?")
	assert.Equal(t, http.StatusNotFound, b.getPage(s.url("/login/forgot")).StatusCode)
	resp := b.postJSON(s.url("/api/auth/password/forgot"), map[string]string{"login": "alice"})
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, "not available")
}
