package pgsession

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Names that look alike are one account, everywhere a name comes in: the
// sign-up form, the login, the admin routes and the command line. What the
// upstream sees is the name as stored, never a look-alike.
func TestLookAlikeUsernamesAreOneAccount(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Header.Get("X-Auth-Username")) })
	const admin = "an admin token that is long enough to pass"
	c := startSite(t, siteOptions{db: db.url, next: up.proxy(), handler: "registration on\nadmin_token \"" + admin + "\""})
	register := func(name string) reply {
		return sendRaw(t, http.MethodPost, c.url("/api/auth/register"),
			jsonText(t, map[string]string{"username": name, "password": "a fine long password"}), "Content-Type", "application/json")
	}

	require.Equal(t, http.StatusCreated, register("bob").StatusCode)
	for _, name := range []string{"ＢＯＢ", "BOB", "Bob"} {
		resp := register(name)
		assert.Equal(t, http.StatusConflict, resp.StatusCode, "%q: %s", name, resp.body)
	}
	for name, msg := range map[string]string{
		"bob\u200b": "Username contains an invisible character (U+200B)",
		"bo\u0007b": "Username contains a control character",
		"\u202ebob": "Username contains an invisible character (U+202E)",
	} {
		resp := register(name)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%q", name)
		assert.Equal(t, msg, resp.json(t)["error"], "%q", name)
	}

	// The fullwidth spelling logs in to bob's account, and the upstream sees "bob".
	b := newBrowser(t)
	b.login(c, "ＢＯＢ", "a fine long password")
	assert.Equal(t, "bob", b.get(c.url("/app")).body)

	resp := sendRaw(t, http.MethodPost, c.url("/api/auth/admin/users"),
		jsonText(t, map[string]any{"username": "Ｂｏｂ", "password": "a fine long password"}),
		"Content-Type", "application/json", "Authorization", "Bearer "+admin)
	assert.Equal(t, http.StatusConflict, resp.StatusCode, "the admin routes: %s", resp.body)
	resp = sendRaw(t, http.MethodPost, c.url("/api/auth/admin/users"),
		jsonText(t, map[string]any{"username": "eve\u200b", "password": "a fine long password"}),
		"Content-Type", "application/json", "Authorization", "Bearer "+admin)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "the admin routes: %s", resp.body)

	cli := cliDB(t, db.url, "a fine long password\n", "user", "add", "ＢＯＢ", "--password-stdin")
	assert.Error(t, cli.err, "the command line")
	assert.Contains(t, cli.all(), "already exists")
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.users`))
}

// Sign-ups are throttled per client: each costs a password hash, and a
// flood of them slowed real logins to seconds.
func TestRegistrationFloodsAreThrottled(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	c := startSite(t, siteOptions{db: db.url, handler: "registration on\nmax_registrations_per_ip 3"})
	for i := range 3 {
		resp := sendRaw(t, http.MethodPost, c.url("/api/auth/register"),
			jsonText(t, map[string]string{"username": fmt.Sprintf("user%d", i), "password": "a fine long password"}), "Content-Type", "application/json")
		require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	}
	resp := sendRaw(t, http.MethodPost, c.url("/api/auth/register"),
		jsonText(t, map[string]string{"username": "user4", "password": "a fine long password"}), "Content-Type", "application/json")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, resp.body)
	assertRetryAfter(t, resp, 15*60)
	assert.Equal(t, 3, db.count(t, `SELECT count(*) FROM pgsession.users`))
}

// An attacker holding one IPv6 /64 rotates through its addresses, so each
// guess seems to come from a new client. The /64 is counted as one client.
func TestIPv6ClientsAreThrottledByTheirSlash64(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	// Behind a proxy Caddy trusts (trusted_proxies), the client address is
	// taken from X-Forwarded-For.
	c := startSite(t, siteOptions{db: db.url, handler: "max_failed_logins_per_ip 3", trustForwardedFor: true})
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	for i := range 3 {
		resp := postLoginJSON(t, c, fmt.Sprintf("user%d", i), "Summer2024!", from(fmt.Sprintf("2001:db8:7:1::%x", i+1))...)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
	}
	resp := postLoginJSON(t, c, "user9", "Summer2024!", from("2001:db8:7:1:abcd:ef01:2345:6789")...)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "a new address in the same /64: %s", resp.body)
	resp = postLoginJSON(t, c, "user9", "Summer2024!", from("2001:db8:7:2::1")...)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the next /64 is another client: %s", resp.body)
}

// A session handle is a UUID, which PostgreSQL matches in any case: ending
// your own session by its upper-case handle ends it, and must also clear
// your cookie.
func TestEndingYourOwnSessionByAnUpperCaseHandleClearsTheCookie(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	for _, how := range []string{"api", "account form"} {
		b := newBrowser(t)
		b.login(c, "alice", "correct horse battery")
		var handle string
		for _, s := range b.get(c.url("/api/auth/sessions")).list(t) {
			if s["current"] == true {
				handle = strings.ToUpper(s["id"].(string))
			}
		}
		require.NotEmpty(t, handle)
		var resp reply
		if how == "api" {
			resp = b.send(http.MethodDelete, c.url("/api/auth/sessions/"+handle), nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		} else {
			resp = b.postForm(c.url("/account"), map[string][]string{"action": {"revoke"}, "handle": {handle}})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
			assert.Equal(t, "/login?done=signed-out", resp.Header.Get("Location"), "the login page says the session ended")
		}
		assert.Empty(t, b.cookie(c), "%s: the cookie of the ended session is cleared", how)
	}
}
