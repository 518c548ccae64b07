package pgsession

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/smtptest"
	"github.com/pgsession/caddy-pgsession/store"
)

// Addresses on users, set by the user with a link mailed to the new
// address, against a real SMTP server.

// emailSite is a site mailing through a server of its own, with alice, who
// has the verified address old@example.com, signed in in a browser.
func emailSite(t *testing.T, handler string) (*smtptest.Server, *testDB, *testSite, *browser, *store.User) {
	t.Helper()
	srv := smtptest.Start(t, smtptest.Options{TLS: "off"})
	db := newTestDB(t)
	s := startSite(t, siteOptions{db: db.url, smtp: srv, handler: handler})
	alice := db.addUser(t, "alice", "correct horse battery")
	require.NoError(t, db.store.SetEmail(context.Background(), alice.ID, "old@example.com", true))
	b := newBrowser(t)
	b.login(s, "alice", "correct horse battery")
	return srv, db, s, b, alice
}

func (db *testDB) email(t *testing.T, u *store.User) (string, bool) {
	t.Helper()
	got, err := db.store.GetUser(context.Background(), u.ID)
	require.NoError(t, err)
	return got.Email, got.EmailVerified
}

// A new address gets a link and the old one a notice; the address changes
// only when the link's page is confirmed (a GET alone, as a mail scanner
// sends, changes nothing), once, and nothing secret is logged.
func TestSettingAnAddressMailsALinkToTheNewAndANoticeToTheOld(t *testing.T) {
	t.Parallel()
	srv, db, s, b, alice := emailSite(t, "site_name \"Example Docs\"")

	resp := b.postJSON(s.url("/api/auth/email"), map[string]string{"email": " New@Example.com "})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, resp.body)
	assert.Equal(t, "new@example.com", resp.json(t)["sent_to"])

	link := verifyLinkIn(t, srv, "new@example.com")
	assert.True(t, strings.HasPrefix(link, s.url("/login/verify-email?token=")), "an absolute link to the site: %s", link)
	notice := mailTo(t, srv, "old@example.com", "is being changed")
	text := mailText(t, notice)
	assert.Contains(t, text, "new@example.com")
	assert.Contains(t, text, `"alice" on Example Docs`)
	assert.NotContains(t, text, "token=", "the notice carries no link that changes anything")
	address, _ := db.email(t, alice)
	assert.Equal(t, "old@example.com", address, "nothing changes before the link is used")

	for range 2 { // a mail scanner, then the person
		page := newBrowser(t).getPage(link)
		require.Equal(t, http.StatusOK, page.StatusCode, page.body)
		assertPageHas(t, page.body, "Confirm address")
		assertPageHas(t, page.body, "new@example.com")
		assert.Equal(t, "no-referrer", page.Header.Get("Referrer-Policy"), "the token is in the address")
	}
	address, _ = db.email(t, alice)
	assert.Equal(t, "old@example.com", address, "a GET alone uses nothing")

	done := newBrowser(t).postPage(link, url.Values{})
	require.Equal(t, http.StatusOK, done.StatusCode, done.body)
	assertPageHas(t, done.body, "Your address new@example.com is verified")
	assert.Equal(t, "no-referrer", done.Header.Get("Referrer-Policy"))
	address, verified := db.email(t, alice)
	assert.Equal(t, "new@example.com", address)
	assert.True(t, verified)

	again := newBrowser(t).postPage(link, url.Values{})
	assert.Equal(t, http.StatusNotFound, again.StatusCode, "used once")
	assertPageHas(t, again.body, "This link does not work")
	replay := sendRaw(t, http.MethodPost, link, "", "Content-Type", "application/x-www-form-urlencoded")
	assert.Equal(t, http.StatusNotFound, replay.StatusCode)
	assert.Contains(t, replay.json(t)["error"], "used already", replay.body)

	token := strings.TrimPrefix(link[strings.Index(link, "token="):], "token=")
	assert.NotContains(t, s.logs(), token, "the token is never logged")
	assert.NotContains(t, s.logs(), "verify-email?token", "nor the link")
}

// An expired link and an unknown one get pages that say which, and where
// to ask for a new link; the account page's form sends links too.
func TestExpiredAndUnknownLinksGetClearPages(t *testing.T) {
	t.Parallel()
	srv, db, s, b, alice := emailSite(t, "")
	page := b.getPage(s.url("/account"))
	assertPageHas(t, page.body, "Email address")
	assertPageHas(t, page.body, "old@example.com")
	assertPageHas(t, page.body, "verified")

	resp := b.postForm(s.url("/account"), url.Values{"action": {"email"}, "email": {"next@example.com"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, "/account?done=email-sent", resp.Header.Get("Location"))
	assertPageHas(t, b.getPage(s.url("/account?done=email-sent")).body, "We sent a link to the new address")
	link := verifyLinkIn(t, srv, "next@example.com")

	_, err := db.pool.Exec(context.Background(), `UPDATE pgsession.account_tokens
		SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day'`)
	require.NoError(t, err)
	for _, expired := range []reply{newBrowser(t).getPage(link), newBrowser(t).postPage(link, url.Values{})} {
		assert.Equal(t, http.StatusBadRequest, expired.StatusCode)
		assertPageHas(t, expired.body, "This link has expired")
		assertPageHas(t, expired.body, "Ask for a new link from your account page")
	}
	assert.Equal(t, "This link has expired", sendRaw(t, http.MethodGet, link, "").json(t)["error"])

	for _, bad := range []string{"/login/verify-email", "/login/verify-email?token=nonsense",
		"/login/verify-email?token=" + strings.Repeat("A", store.TokenLength)} {
		unknown := newBrowser(t).getPage(s.url(bad))
		assert.Equal(t, http.StatusNotFound, unknown.StatusCode, bad)
		assertPageHas(t, unknown.body, "This link does not work")
	}
	address, _ := db.email(t, alice)
	assert.Equal(t, "old@example.com", address)
}

// An address another account has is refused, by the JSON route and the
// form; the links a user is sent are limited, with Retry-After.
func TestTakenAddressRefusedAndLinksThrottled(t *testing.T) {
	t.Parallel()
	srv, db, s, b, _ := emailSite(t, "")
	bob := db.addUser(t, "bob", "correct horse battery")
	require.NoError(t, db.store.SetEmail(context.Background(), bob.ID, "bob@example.com", true))

	resp := b.postJSON(s.url("/api/auth/email"), map[string]string{"email": "BOB@example.com"})
	assert.Equal(t, http.StatusConflict, resp.StatusCode, resp.body)
	assert.Equal(t, "Another account has that email address", resp.json(t)["error"])
	form := b.postForm(s.url("/account"), url.Values{"action": {"email"}, "email": {"bob@example.com"}})
	assert.Equal(t, "/account?error=email-taken", form.Header.Get("Location"))
	assertPageHas(t, b.getPage(s.url("/account?error=email-taken")).body, "Another account has that email address")

	for _, bad := range []any{map[string]string{"email": "not an address"}, map[string]string{"email": ""},
		map[string]any{"email": 1}, map[string]string{"address": "a@example.com"}} {
		assert.Equal(t, http.StatusBadRequest, b.postJSON(s.url("/api/auth/email"), bad).StatusCode, "%v", bad)
	}
	same := b.postJSON(s.url("/api/auth/email"), map[string]string{"email": "old@example.com"})
	assert.Equal(t, http.StatusOK, same.StatusCode, "already hers: nothing sent")
	assert.Equal(t, http.StatusUnauthorized, sendRaw(t, http.MethodPost, s.url("/api/auth/email"), `{"email":"x@example.com"}`,
		"Content-Type", "application/json").StatusCode)

	sent := 0
	for sent < 10 {
		resp = b.postJSON(s.url("/api/auth/email"), map[string]string{"email": "try@example.com"})
		if resp.StatusCode != http.StatusAccepted {
			break
		}
		sent++
	}
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, resp.body)
	assert.Contains(t, resp.json(t)["error"], "Too many links")
	assertRetryAfter(t, resp, 3600)
	assert.Equal(t, 3, sent, "5 an hour, the two to the taken address counted too")
	require.Eventually(t, func() bool { return countMailsTo(t, srv, "try@example.com") == sent },
		smtptest.WaitTimeout, 20*time.Millisecond)
}

// Without smtp the account page shows the address and says an admin sets
// it, and the JSON route says there is no mail.
func TestWithoutMailAnAdminSetsTheAddress(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s := startSite(t, siteOptions{db: db.url})
	alice := db.addUser(t, "alice", "correct horse battery")
	require.NoError(t, db.store.SetEmail(context.Background(), alice.ID, "alice@example.com", true))
	b := newBrowser(t)
	b.login(s, "alice", "correct horse battery")
	page := b.getPage(s.url("/account"))
	assertPageHas(t, page.body, "alice@example.com")
	assertPageHas(t, page.body, "an admin sets your address")
	assertPageLacks(t, page.body, `name="email"`)
	resp := b.postJSON(s.url("/api/auth/email"), map[string]string{"email": "new@example.com"})
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, resp.json(t)["error"], "This site sends no mail")
}
