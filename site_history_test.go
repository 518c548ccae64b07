package pgsession

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// The sign-in history: each attempt to sign in to an account, as its owner
// and admins see it, and what it must never keep.

const firefoxOnLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"

// from is the header pairs of a client at ip with the browser agent, behind
// a proxy Caddy trusts.
func from(ip, agent string) []string { return []string{"X-Forwarded-For", ip, "User-Agent", agent} }

// historyRows counts the rows of the sign-in history.
func (db *testDB) historyRows(t *testing.T) int {
	t.Helper()
	return db.count(t, `SELECT count(*) FROM pgsession.sign_in_history`)
}

// historyText is the whole sign-in history table as text.
func (db *testDB) historyText(t *testing.T) string {
	t.Helper()
	return db.queryText(t, `SELECT coalesce(string_agg(h::text, ' '), '') FROM pgsession.sign_in_history h`)
}

// Alice reads her sign-in history: a failed guess, her own sign-in, more
// guesses and the attempt refused past the limit, newest first, each with
// the address, browser and outcome. What was typed is never kept: not the
// passwords, and not a password typed into the name field, which names no
// account and leaves no row at all. Bob sees only his own.
func TestSignInHistoryShowsEachAttemptOnAnAccount(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	db.addUser(t, "bob", "bob's long password")
	c := startSite(t, siteOptions{db: db.url, handler: "max_failed_logins_per_account 2", trustForwardedFor: true})
	login := c.url("/api/auth/login")
	alice := newBrowser(t)

	steps := []struct {
		password, ip, agent string
		status              int
		outcome, device     string
	}{
		{"wrong guess one", "192.0.2.1", "curl/8.5.0", http.StatusUnauthorized, "failure", "curl"},
		{"correct horse battery", "198.51.100.7", firefoxOnLinux, http.StatusOK, "success", "Firefox on Linux"},
		{"wrong guess two", "203.0.113.5", "python-requests/2.32.3", http.StatusUnauthorized, "failure", "Python Requests"},
		{"wrong guess three", "203.0.113.5", "python-requests/2.32.3", http.StatusUnauthorized, "failure", "Python Requests"},
		{"correct horse battery", "2001:db8::9", "curl/8.5.0", http.StatusTooManyRequests, "throttled", "curl"},
	}
	for _, s := range steps {
		var resp reply
		if s.status == http.StatusOK {
			resp = alice.do(webtest.JSONRequest(t, http.MethodPost, login,
				map[string]string{"username": "alice", "password": s.password}, from(s.ip, s.agent)...))
		} else {
			resp = postLoginJSON(t, c, "alice", s.password, from(s.ip, s.agent)...)
		}
		require.Equal(t, s.status, resp.StatusCode, "%s from %s: %s", s.outcome, s.ip, resp.body)
	}
	resp := postLoginJSON(t, c, "Tr0ub4dor&3-hunter2", "correct horse battery", from("192.0.2.66", "curl/8.5.0")...)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a password typed as the name: %s", resp.body)

	resp = alice.get(c.url("/api/auth/history"))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	history := resp.list(t)
	require.Len(t, history, len(steps), resp.body)
	var last time.Time
	for i, got := range history {
		want := steps[len(steps)-1-i]
		assert.Equal(t, want.outcome, got["outcome"], "entry %d", i)
		assert.Equal(t, want.ip, got["ip"], "entry %d", i)
		assert.Equal(t, want.agent, got["user_agent"], "entry %d", i)
		assert.Equal(t, want.device, got["device"], "entry %d", i)
		at, err := time.Parse(time.RFC3339Nano, got["time"].(string))
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now(), at, time.Minute)
		if i > 0 {
			assert.False(t, at.After(last), "newest first")
		}
		last = at
	}

	assert.Equal(t, len(steps), db.historyRows(t), "the attempt on no account left no row")
	text := db.historyText(t)
	for _, secret := range []string{"Tr0ub4dor", "hunter2", "192.0.2.66", "wrong guess", "correct horse"} {
		assert.NotContains(t, text, secret, "the history keeps no names or passwords typed")
	}

	bob := newBrowser(t)
	bob.login(c, "bob", "bob's long password")
	resp = bob.get(c.url("/api/auth/history"))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	require.Len(t, resp.list(t), 1, "bob sees only his own sign-in: %s", resp.body)
	for _, s := range steps {
		assert.NotContains(t, resp.body, s.ip)
	}
	assert.Equal(t, http.StatusUnauthorized, newBrowser(t).get(c.url("/api/auth/history")).StatusCode)
}

// The account page lists the latest ten attempts, the failed and blocked
// ones marked as such.
func TestAccountPageShowsRecentSignIns(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	u := db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: "max_failed_logins_per_account 11", trustForwardedFor: true})
	for i := range 11 {
		resp := postLoginJSON(t, c, "alice", "a wrong guess", from(fmt.Sprintf("192.0.2.%d", i+1), firefoxOnLinux)...)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
	}
	resp := postLoginJSON(t, c, "alice", "correct horse battery", from("198.51.100.99", "curl/8.5.0")...)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, resp.body)

	token, _ := db.sessionInDB(t, u)
	b := newBrowser(t)
	b.setCookie(c, token)
	resp = b.getPage(c.url("/account"))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	page := resp.body
	assert.Contains(t, page, "Recent sign-ins")
	assert.Equal(t, 10, strings.Count(page, `<li class="sign-in`), "the latest ten")
	assert.Equal(t, 1, strings.Count(page, "Blocked: too many failed attempts"))
	assert.Equal(t, 9, strings.Count(page, "Failed: wrong password"))
	assert.Equal(t, 10, strings.Count(page, `<li class="sign-in failed">`), "failures are marked")
	assert.Contains(t, page, "198.51.100.99")
	assert.Contains(t, page, "Firefox on Linux")
	assert.NotContains(t, page, "192.0.2.1<", "the oldest two are left out")
	assert.NotContains(t, page, "192.0.2.2<")
	assert.Less(t, strings.Index(page, "198.51.100.99"), strings.Index(page, "192.0.2.11<"), "newest first")
}

// The account page says how each sign-in was made, as the API's factor does.
func TestAccountPageNamesTheFactorOfASignIn(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	page := b.getPage(c.url("/account")).body
	assert.Contains(t, page, `<span class="badge">Signed in with password</span>`)
	resp := b.get(c.url("/api/auth/history"))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, `"outcome":"success","factor":"password"`)
}

// An admin reads any user's history; nobody else can. Deleting the user
// deletes their history.
func TestAdminReadsAUsersSignInHistory(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	db.addAdmin(t, "root", "root password here")
	c := startSite(t, siteOptions{db: db.url, handler: "admin_token " + testAdminToken})
	for range 3 {
		require.Equal(t, http.StatusUnauthorized, postLoginJSON(t, c, "alice", "a wrong guess").StatusCode)
	}
	aliceBrowser := newBrowser(t)
	aliceBrowser.login(c, "alice", "correct horse battery")
	api := c.url("/api/auth/admin/users")
	tok := []string{"X-Admin-Token", testAdminToken}

	resp := sendRaw(t, http.MethodGet, api+"/alice/history", "", tok...)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	history := resp.list(t)
	require.Len(t, history, 4)
	assert.Equal(t, "success", history[0]["outcome"])
	assert.Equal(t, "127.0.0.1", history[0]["ip"])

	root := newBrowser(t)
	root.login(c, "root", "root password here")
	resp = root.get(api + "/ALICE/history?limit=2")
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Equal(t, history[:2], resp.list(t), "an admin's session works too; limit keeps the newest")

	for _, limit := range []string{"0", "-1", "501", "ten", "1e3"} {
		resp := sendRaw(t, http.MethodGet, api+"/alice/history?limit="+limit, "", tok...)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "limit=%s: %s", limit, resp.body)
		assert.Equal(t, "limit must be a whole number from 1 to 500", resp.json(t)["error"], "limit=%s", limit)
	}
	assert.Equal(t, http.StatusForbidden, aliceBrowser.get(api+"/alice/history").StatusCode, "not for a non-admin, even about herself")
	assert.Equal(t, http.StatusUnauthorized, sendRaw(t, http.MethodGet, api+"/alice/history", "").StatusCode)
	assert.Equal(t, http.StatusNotFound, sendRaw(t, http.MethodGet, api+"/nobody/history", "", tok...).StatusCode)

	require.Equal(t, http.StatusOK, sendRaw(t, http.MethodDelete, api+"/alice", "", tok...).StatusCode)
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.sign_in_history WHERE user_id = $1`, alice.ID),
		"the user's history went with them")
	assert.Equal(t, 1, db.historyRows(t), "root's own sign-in stays")
}

// The cleanup job deletes attempts older than history_retention and says
// how many in its log line.
func TestOldSignInsAreTrimmedByTheCleanup(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, app: "history_retention 30d\ncleanup_interval 1s"})
	b := newBrowser(t)
	for range 3 {
		b.login(c, "alice", "correct horse battery")
	}
	db.exec(t, `UPDATE pgsession.sign_in_history SET attempted_at = now() - interval '31 days'
		WHERE id = (SELECT min(id) FROM pgsession.sign_in_history)`)
	db.exec(t, `UPDATE pgsession.sign_in_history SET attempted_at = now() - interval '29 days'
		WHERE id = (SELECT max(id) FROM pgsession.sign_in_history)`)

	require.Eventually(t, func() bool { return db.historyRows(t) == 2 }, 30*time.Second, 50*time.Millisecond,
		"the 31-day-old attempt goes, the 29-day-old one stays")
	require.Eventually(t, func() bool {
		for _, e := range c.logEntries(t) {
			if e["msg"] == "deleted expired sessions" && e["sign_ins_deleted"] == 1.0 {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "the cleanup logs the count:\n%s", c.logs())
	assert.Len(t, b.get(c.url("/api/auth/history")).list(t), 2)
}

// history_retention 0 keeps no history: nothing is recorded, and the
// account page has no section for it.
func TestHistoryRetentionZeroKeepsNoHistory(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, app: "history_retention 0"})
	require.Equal(t, http.StatusUnauthorized, postLoginJSON(t, c, "alice", "a wrong guess").StatusCode)
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")

	assert.Zero(t, db.historyRows(t))
	resp := b.get(c.url("/api/auth/history"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "[]", strings.TrimSpace(resp.body))
	page := b.getPage(c.url("/account")).body
	assert.Contains(t, page, "Sessions")
	assert.NotContains(t, page, "Recent sign-ins")
}

// A history that cannot be written costs no login: the user signs in, and
// the server logs a warning that names no password.
func TestALoginSucceedsWhenItsHistoryCannotBeWritten(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	db.exec(t, `ALTER TABLE pgsession.sign_in_history ADD CONSTRAINT refuse_every_row CHECK (false) NOT VALID`)
	c := startSite(t, siteOptions{db: db.url})

	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	assert.Equal(t, http.StatusOK, b.get(c.url("/api/auth/me")).StatusCode)
	assert.Equal(t, http.StatusUnauthorized, postLoginJSON(t, c, "alice", "a wrong guess").StatusCode)

	var warnings int
	for _, e := range c.logEntries(t) {
		if e["msg"] == "could not record a sign-in attempt in the history" {
			warnings++
			assert.Equal(t, "warn", e["level"])
		}
	}
	assert.Equal(t, 2, warnings, "one warning per attempt:\n%s", c.logs())
	assert.NotContains(t, c.logs(), "correct horse battery")
	assert.NotContains(t, c.logs(), "a wrong guess")
}
