package pgsession

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// Attacks, one test each, told from the attacker's side: each test fails if
// the defence it names is missing. They run the plugin in process against
// a real PostgreSQL (see site_test.go); the defences that need the Caddy
// binary (the access log, the memory of the process, caddy validate) are
// tested in integration/security_test.go.

// ---------------------------------------------------------------------------
// Helpers: an attacker's HTTP client (sendRaw) sends exactly the headers it
// is given (no cookie jar), and users and sessions are set up straight in
// the database where the story does not need a real login.

// randomIPv4 is a made-up public-looking address for a forged header.
func randomIPv4(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return fmt.Sprintf("%d.%d.%d.%d", 11+b[0]%200, b[1], b[2], 1+b[3]%250)
}

// ---------------------------------------------------------------------------
// 1. Brute force

// An attacker guesses one account's password. After ten wrong guesses every
// further try is refused, the right password included, so guessing stops
// paying; the count lives in PostgreSQL, so a second server refuses as well;
// and once the failures age out of the window the owner gets in again.
func TestBruteForceOnOneAccountIsThrottledOnEveryServer(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	one := startSite(t, siteOptions{db: db.url})
	two := startSite(t, siteOptions{db: db.url})

	for i := range 10 {
		resp := postLoginJSON(t, one, "alice", fmt.Sprintf("guess number %d", i))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "guess %d: %s", i, resp.body)
	}

	// The eleventh guess is the right one, and it is refused all the same:
	// the attacker cannot tell it was right.
	resp := postLoginJSON(t, one, "alice", "correct horse battery")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, resp.body)
	assertRetryAfter(t, resp, 15*60)
	assert.Empty(t, resp.Header.Values("Set-Cookie"), "no session for a throttled login")
	assert.Contains(t, resp.json(t)["error"], "Too many failed logins")

	// The login form, another server on the same database and another
	// spelling of the name all see the same count.
	form := sendRaw(t, http.MethodPost, one.url("/login"), url.Values{"username": {"alice"}, "password": {"correct horse battery"}}.Encode(),
		"Content-Type", "application/x-www-form-urlencoded")
	assert.Equal(t, http.StatusTooManyRequests, form.StatusCode, "the form login is throttled too")
	resp = postLoginJSON(t, two, "alice", "correct horse battery")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "a second server sees the same limit: %s", resp.body)
	assertRetryAfter(t, resp, 15*60)
	resp = postLoginJSON(t, two, "ALICE", "correct horse battery")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "names are counted regardless of case")

	// Throttling, not a lockout: once the failures leave the window, the owner logs in.
	db.moveLoginAttemptsOutOfTheWindow(t)
	resp = postLoginJSON(t, two, "alice", "correct horse battery")
	assert.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	resp = postLoginJSON(t, one, "alice", "correct horse battery")
	assert.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
}

// Credential stuffing: one address tries a common password on many accounts,
// never failing on any one of them often enough for the per-account limit.
// The per-IP limit stops it, for the next account too.
func TestCredentialStuffingFromOneAddressIsThrottled(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "victim", "victim's real password")
	c := startSite(t, siteOptions{db: db.url, handler: "max_failed_logins_per_ip 5"})

	for _, name := range []string{"admin", "root", "test", "guest", "info"} {
		resp := postLoginJSON(t, c, name, "Summer2024!")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: %s", name, resp.body)
	}
	resp := postLoginJSON(t, c, "victim", "victim's real password")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode,
		"a sixth account from the same address is refused, right password or not: %s", resp.body)
	assertRetryAfter(t, resp, 15*60)
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.login_attempts WHERE username_key = 'victim'`),
		"the victim's own account had no failures: the address is what is throttled")
}

// A thief holding a stolen session tries to learn the account's password
// through the password-change form, which checks the current password. Those
// guesses count like failed logins.
func TestStolenSessionCannotGuessThePasswordThroughPasswordChange(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	thief := newBrowser(t)
	thief.login(c, "alice", "correct horse battery")

	for i := range 10 {
		resp := thief.send(http.MethodPost, c.url("/api/auth/password"),
			map[string]string{"current_password": fmt.Sprintf("guess number %d", i), "new_password": "the thief's password"})
		require.Equal(t, http.StatusForbidden, resp.StatusCode, "guess %d: %s", i, resp.body)
	}
	resp := thief.send(http.MethodPost, c.url("/api/auth/password"),
		map[string]string{"current_password": "correct horse battery", "new_password": "the thief's password"})
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the right current password is refused after ten wrong ones: %s", resp.body)
	assertRetryAfter(t, resp, 15*60)
	resp = thief.postForm(c.url("/account"), url.Values{"action": {"password"},
		"current_password": {"correct horse battery"}, "new_password": {"the thief's password"}})
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the account page's form is throttled too: %s", resp.body)

	// The password did not change: once the window passes, the owner's password works.
	db.moveLoginAttemptsOutOfTheWindow(t)
	assert.Equal(t, http.StatusOK, postLoginJSON(t, c, "alice", "correct horse battery").StatusCode)
	assert.Equal(t, http.StatusUnauthorized, postLoginJSON(t, c, "alice", "the thief's password").StatusCode)
}

// An attacker forges X-Forwarded-For (and its cousins) with a new address on
// every try, hoping each looks like a new client. The site has no
// trusted_proxies, so Caddy ignores the headers and the client IP is the
// connection's: neither limit is escaped.
func TestForgedForwardedForDoesNotEscapeTheLimits(t *testing.T) {
	t.Parallel()
	forged := func(t *testing.T) []string {
		return []string{
			"X-Forwarded-For", randomIPv4(t),
			"X-Real-IP", randomIPv4(t),
			"Forwarded", "for=" + randomIPv4(t),
		}
	}

	t.Run("per IP", func(t *testing.T) {
		db := newTestDB(t)
		db.addUser(t, "victim", "victim's real password")
		c := startSite(t, siteOptions{db: db.url, handler: "max_failed_logins_per_ip 5"})
		for _, name := range []string{"admin", "root", "test", "guest", "info"} {
			resp := postLoginJSON(t, c, name, "Summer2024!", forged(t)...)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
		}
		resp := postLoginJSON(t, c, "victim", "victim's real password", forged(t)...)
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, resp.body)
		assert.Equal(t, "127.0.0.1", db.queryText(t, `SELECT string_agg(DISTINCT ip, ',') FROM pgsession.login_attempts`),
			"every failure was counted against the real address")
	})

	t.Run("per account", func(t *testing.T) {
		db := newTestDB(t)
		db.addUser(t, "alice", "correct horse battery")
		c := startSite(t, siteOptions{db: db.url})
		for i := range 10 {
			resp := postLoginJSON(t, c, "alice", fmt.Sprintf("guess number %d", i), forged(t)...)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
		}
		resp := postLoginJSON(t, c, "alice", "correct horse battery", forged(t)...)
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, resp.body)
		assert.Equal(t, "127.0.0.1", db.queryText(t, `SELECT string_agg(DISTINCT ip, ',') FROM pgsession.login_attempts`))
	})
}

// ---------------------------------------------------------------------------
// 2. Cross-site request forgery

// csrfRequest is one state-changing request a hostile page would have the
// victim's browser send.
type csrfRequest struct {
	method, path, contentType, body string
	token                           string // the session cookie, if any
}

// A page on another site makes the victim's browser send each of the
// plugin's state-changing requests, with the victim's cookies. Each is
// refused with 403 and changes nothing; the same request from the site's own
// pages goes through.
func TestCrossSiteRequestsCannotDriveTheAuthRoutes(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	c := startSite(t, siteOptions{db: db.url, handler: "registration on"})
	root := db.addBcryptUser(t, "root", "root's own password", true)
	rootToken, _ := db.sessionInDB(t, root)

	n := 0
	victim := func(t *testing.T) (*store.User, string) {
		n++
		name, password := fmt.Sprintf("victim-%d", n), fmt.Sprintf("victim %d's password", n)
		return db.addBcryptUser(t, name, password, false), password
	}
	form := "application/x-www-form-urlencoded"
	cases := []struct {
		name    string
		want    int // the answer to the same request from the site itself
		prepare func(t *testing.T) csrfRequest
	}{
		{"POST /api/auth/login", http.StatusOK, func(t *testing.T) csrfRequest {
			// Login CSRF: the victim is logged into an account the attacker controls.
			u, pw := victim(t)
			return csrfRequest{method: "POST", path: "/api/auth/login", contentType: "application/json",
				body: jsonText(t, map[string]string{"username": u.Username, "password": pw})}
		}},
		{"POST /api/auth/logout", http.StatusOK, func(t *testing.T) csrfRequest {
			u, _ := victim(t)
			tok, _ := db.sessionInDB(t, u)
			return csrfRequest{method: "POST", path: "/api/auth/logout", token: tok}
		}},
		{"POST /api/auth/register", http.StatusCreated, func(t *testing.T) csrfRequest {
			n++
			return csrfRequest{method: "POST", path: "/api/auth/register", contentType: "application/json",
				body: jsonText(t, map[string]string{"username": fmt.Sprintf("planted-%d", n), "password": "attacker's password"})}
		}},
		{"POST /api/auth/password", http.StatusOK, func(t *testing.T) csrfRequest {
			u, pw := victim(t)
			tok, _ := db.sessionInDB(t, u)
			return csrfRequest{method: "POST", path: "/api/auth/password", token: tok, contentType: "application/json",
				body: jsonText(t, map[string]string{"current_password": pw, "new_password": "attacker's password"})}
		}},
		{"POST /api/auth/sessions/revoke-others", http.StatusOK, func(t *testing.T) csrfRequest {
			u, _ := victim(t)
			tok, _ := db.sessionInDB(t, u)
			db.sessionInDB(t, u)
			return csrfRequest{method: "POST", path: "/api/auth/sessions/revoke-others", token: tok}
		}},
		{"DELETE /api/auth/sessions/{id}", http.StatusOK, func(t *testing.T) csrfRequest {
			u, _ := victim(t)
			tok, _ := db.sessionInDB(t, u)
			_, other := db.sessionInDB(t, u)
			return csrfRequest{method: "DELETE", path: "/api/auth/sessions/" + other, token: tok}
		}},
		{"POST /login", http.StatusSeeOther, func(t *testing.T) csrfRequest {
			u, pw := victim(t)
			return csrfRequest{method: "POST", path: "/login", contentType: form,
				body: url.Values{"username": {u.Username}, "password": {pw}}.Encode()}
		}},
		{"POST /logout", http.StatusSeeOther, func(t *testing.T) csrfRequest {
			u, _ := victim(t)
			tok, _ := db.sessionInDB(t, u)
			return csrfRequest{method: "POST", path: "/logout", token: tok}
		}},
		{"POST /account", http.StatusSeeOther, func(t *testing.T) csrfRequest {
			u, pw := victim(t)
			tok, _ := db.sessionInDB(t, u)
			return csrfRequest{method: "POST", path: "/account", token: tok, contentType: form,
				body: url.Values{"action": {"password"}, "current_password": {pw}, "new_password": {"attacker's password"}}.Encode()}
		}},
		{"POST /api/auth/admin/users", http.StatusCreated, func(t *testing.T) csrfRequest {
			n++
			return csrfRequest{method: "POST", path: "/api/auth/admin/users", token: rootToken, contentType: "application/json",
				body: jsonText(t, map[string]any{"username": fmt.Sprintf("backdoor-%d", n), "password": "attacker's password", "is_admin": true})}
		}},
		{"DELETE /api/auth/admin/users/{username}", http.StatusOK, func(t *testing.T) csrfRequest {
			u, _ := victim(t)
			return csrfRequest{method: "DELETE", path: "/api/auth/admin/users/" + u.Username, token: rootToken}
		}},
		{"DELETE /api/auth/admin/users/{username}/sessions", http.StatusOK, func(t *testing.T) csrfRequest {
			u, _ := victim(t)
			db.sessionInDB(t, u)
			return csrfRequest{method: "DELETE", path: "/api/auth/admin/users/" + u.Username + "/sessions", token: rootToken}
		}},
		{"DELETE /api/auth/admin/sessions/{id}", http.StatusOK, func(t *testing.T) csrfRequest {
			u, _ := victim(t)
			_, handle := db.sessionInDB(t, u)
			return csrfRequest{method: "DELETE", path: "/api/auth/admin/sessions/" + handle, token: rootToken}
		}},
	}

	self := c.url("")
	send := func(t *testing.T, r csrfRequest, header ...string) reply {
		t.Helper()
		h := append([]string{}, header...)
		if r.contentType != "" {
			h = append(h, "Content-Type", r.contentType)
		}
		if r.token != "" {
			h = append(h, "Cookie", cookieHeader(r.token))
		}
		return sendRaw(t, r.method, c.url(r.path), r.body, h...)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, hostile := range [][]string{
				{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"},
				{"Sec-Fetch-Site", "cross-site"},
				{"Sec-Fetch-Site", "same-site", "Origin", "http://evil.127.0.0.1.nip.io"}, // a sibling subdomain
				{"Origin", "https://evil.example"},                                        // an older browser: no Sec-Fetch-Site
			} {
				r := tc.prepare(t)
				before := db.fingerprint(t)
				resp := send(t, r, hostile...)
				assert.Equal(t, http.StatusForbidden, resp.StatusCode, "with %q: %s", hostile, resp.body)
				assert.Contains(t, resp.body, "Cross-origin request refused", "with %q", hostile)
				assert.Empty(t, resp.Header.Values("Set-Cookie"), "with %q", hostile)
				assert.Equal(t, before, db.fingerprint(t), "with %q the request changed users or sessions", hostile)
			}
			for _, friendly := range [][]string{
				{"Sec-Fetch-Site", "same-origin", "Origin", self},
				{"Origin", self},
			} {
				resp := send(t, tc.prepare(t), friendly...)
				assert.Equal(t, tc.want, resp.StatusCode, "with %q: %s", friendly, resp.body)
			}
		})
	}
}

// A hostile page posts a form to the application behind the gate. The
// victim's browser attaches the session cookie, so without the gate's check
// the app would act on it. The gate refuses it before the app sees it; the
// site's own forms, a site that opts out, and an origin the site trusts get
// through.
func TestCrossSiteFormsNeverReachTheApp(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var reached []string
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reached = append(reached, r.Method+" "+r.URL.Path)
		mu.Unlock()
		io.WriteString(w, "done")
	})
	wasReached := func(method, path string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(reached, method+" "+path)
	}

	db := newTestDB(t)
	alice := db.addBcryptUser(t, "alice", "correct horse battery", false)
	token, _ := db.sessionInDB(t, alice)
	guarded := startSite(t, siteOptions{db: db.url, next: up.proxy()})
	optedOut := startSite(t, siteOptions{db: db.url, next: up.proxy(), handler: "cross_origin_protection off"})
	trusting := startSite(t, siteOptions{db: db.url, next: up.proxy(), handler: "trusted_origins https://app.example"})

	transfer := func(c *testSite, method, path string, header ...string) reply {
		t.Helper()
		return sendRaw(t, method, c.url(path), "amount=1000&to=mallory",
			append([]string{"Cookie", cookieHeader(token), "Content-Type", "application/x-www-form-urlencoded"}, header...)...)
	}

	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		path := "/transfer/cross-site/" + method
		resp := transfer(guarded, method, path, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s: %s", method, resp.body)
		assert.False(t, wasReached(method, path), "a cross-site %s reached the app", method)

		path = "/transfer/old-browser/" + method
		resp = transfer(guarded, method, path, "Origin", "https://evil.example")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s: %s", method, resp.body)
		assert.False(t, wasReached(method, path), "a cross-origin %s reached the app", method)
	}

	resp := transfer(guarded, http.MethodPost, "/transfer/same-origin", "Sec-Fetch-Site", "same-origin", "Origin", guarded.url(""))
	assert.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.True(t, wasReached(http.MethodPost, "/transfer/same-origin"), "the site's own form reaches the app")
	resp = sendRaw(t, http.MethodGet, guarded.url("/statement"), "", "Cookie", cookieHeader(token), "Sec-Fetch-Site", "cross-site")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a link from another site still works: only state-changing methods are checked")

	resp = transfer(optedOut, http.MethodPost, "/transfer/opted-out", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	assert.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.True(t, wasReached(http.MethodPost, "/transfer/opted-out"), "with cross_origin_protection off the site decides")

	resp = transfer(trusting, http.MethodPost, "/transfer/trusted", "Sec-Fetch-Site", "cross-site", "Origin", "https://app.example")
	assert.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.True(t, wasReached(http.MethodPost, "/transfer/trusted"), "a trusted origin gets through")
	resp = transfer(trusting, http.MethodPost, "/transfer/untrusted", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.body)
	assert.False(t, wasReached(http.MethodPost, "/transfer/untrusted"), "only the trusted origin gets through")
}

// ---------------------------------------------------------------------------
// 3. User enumeration

// headersExcept returns a response's header without the named fields.
func headersExcept(h http.Header, names ...string) http.Header {
	out := h.Clone()
	for _, n := range names {
		out.Del(n)
	}
	return out
}

func headerNames(h http.Header) []string {
	var names []string
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// An attacker probes which names have accounts by comparing the answer for
// a name that exists (with a wrong password) against one that does not. The
// answers are the same, byte for byte; and no route lists users to anyone but
// an admin.
func TestLoginAnswersDoNotRevealWhichUsersExist(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	db.addBcryptUser(t, "root", "root's own password", true) // the admin routes are on
	c := startSite(t, siteOptions{db: db.url})

	t.Run("JSON", func(t *testing.T) {
		existing := postLoginJSON(t, c, "alice", "not her password")
		unknown := postLoginJSON(t, c, "mallory", "not her password")
		require.Equal(t, http.StatusUnauthorized, existing.StatusCode)
		assert.Equal(t, existing.StatusCode, unknown.StatusCode)
		assert.Equal(t, existing.body, unknown.body)
		assert.Equal(t, headersExcept(existing.Header, "Date"), headersExcept(unknown.Header, "Date"))
	})

	t.Run("form", func(t *testing.T) {
		post := func(name string) reply {
			return sendRaw(t, http.MethodPost, c.url("/login"),
				url.Values{"username": {name}, "password": {"not her password"}, "redirect": {"/docs/"}}.Encode(),
				"Content-Type", "application/x-www-form-urlencoded")
		}
		existing, unknown := post("alice"), post("mallory")
		require.Equal(t, http.StatusUnauthorized, existing.StatusCode)
		assert.Equal(t, existing.StatusCode, unknown.StatusCode)
		// The re-shown form echoes the name typed; apart from that the pages are the same.
		require.Contains(t, existing.body, `value="alice"`)
		require.Contains(t, unknown.body, `value="mallory"`)
		assert.Equal(t,
			strings.ReplaceAll(existing.body, `value="alice"`, `value="NAME"`),
			strings.ReplaceAll(unknown.body, `value="mallory"`, `value="NAME"`))
		assert.Equal(t, headerNames(existing.Header), headerNames(unknown.Header))
		assert.Equal(t, headersExcept(existing.Header, "Date", "Content-Length"), headersExcept(unknown.Header, "Date", "Content-Length"))
	})

	t.Run("no user list for non-admins", func(t *testing.T) {
		anon := sendRaw(t, http.MethodGet, c.url("/api/auth/admin/users"), "")
		assert.Equal(t, http.StatusUnauthorized, anon.StatusCode, anon.body)
		b := newBrowser(t)
		b.login(c, "alice", "correct horse battery")
		resp := b.get(c.url("/api/auth/admin/users"))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.body)
		assert.JSONEq(t, `{"error":"Admin access required"}`, resp.body)
		assert.NotContains(t, resp.body, "root")
		// Nor does asking about a named user tell whether it exists.
		existing := b.get(c.url("/api/auth/admin/users/root/sessions"))
		unknown := b.get(c.url("/api/auth/admin/users/nobody-here/sessions"))
		assert.Equal(t, http.StatusForbidden, existing.StatusCode)
		assert.Equal(t, existing.StatusCode, unknown.StatusCode)
		assert.Equal(t, existing.body, unknown.body)
	})
}

// ---------------------------------------------------------------------------
// 4. Session fixation and hijacking

// An attacker plants a session token in the victim's browser before the
// victim logs in, hoping to share the session afterwards; later, the attacker
// replays a cookie copied earlier. A login always issues a new token and ends
// the planted one, and logout, a password change and expiry end a session on
// the server, so a copy of its cookie is worthless.
func TestPlantedAndReplayedSessionCookiesGetNothing(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	db.addUser(t, "mallory", "mallory's password")
	c := startSite(t, siteOptions{db: db.url})
	me := func(t *testing.T, token string) reply {
		t.Helper()
		return sendRaw(t, http.MethodGet, c.url("/api/auth/me"), "", "Cookie", cookieHeader(token))
	}
	assertEnded := func(t *testing.T, token, why string) {
		t.Helper()
		resp := me(t, token)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: %s", why, resp.body)
		assert.JSONEq(t, `{"error":"Session expired"}`, resp.body, why)
		resp = sendRaw(t, http.MethodGet, c.url("/private"), "", "Cookie", cookieHeader(token))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: the site behind the gate refuses it too", why)
	}

	attacker := newBrowser(t)
	attacker.login(c, "mallory", "mallory's password")
	planted := map[string]string{
		"a made-up token of the right shape": base64.RawURLEncoding.EncodeToString([]byte(randomHex(t, 16))),
		"the attacker's own live session":    attacker.cookie(c),
		"garbage":                            "not-even-a-token",
	}
	for what, token := range planted {
		victim := newBrowser(t)
		victim.setCookie(c, token)
		victim.login(c, "alice", "correct horse battery")
		assert.NotEqual(t, token, victim.cookie(c), "%s: login issued a new token", what)
		assert.Equal(t, "alice", victim.get(c.url("/api/auth/me")).json(t)["username"])
		// The attacker's copy of the planted token does not open alice's account.
		resp := me(t, token)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: %s", what, resp.body)
		assert.NotContains(t, resp.body, "alice", what)
	}

	t.Run("after logout", func(t *testing.T) {
		for _, path := range []string{"/api/auth/logout", "/logout"} {
			b := newBrowser(t)
			b.login(c, "alice", "correct horse battery")
			stolen := b.cookie(c)
			require.Equal(t, http.StatusOK, me(t, stolen).StatusCode)
			resp := b.postForm(c.url(path), nil)
			require.Less(t, resp.StatusCode, 400, resp.body)
			assertEnded(t, stolen, "replayed after "+path)
		}
	})

	t.Run("after a password change", func(t *testing.T) {
		laptop, phone := newBrowser(t), newBrowser(t)
		laptop.login(c, "alice", "correct horse battery")
		stolen := laptop.cookie(c)
		phone.login(c, "alice", "correct horse battery")
		resp := phone.send(http.MethodPost, c.url("/api/auth/password"),
			map[string]string{"current_password": "correct horse battery", "new_password": "a fresh password"})
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		assertEnded(t, stolen, "the laptop's cookie, stolen before the change")

		laptop.login(c, "alice", "a fresh password")
		stolen = laptop.cookie(c)
		resp = phone.postForm(c.url("/account"), url.Values{"action": {"password"},
			"current_password": {"a fresh password"}, "new_password": {"another fresh password"}})
		require.Equal(t, "/account?done=password", resp.Header.Get("Location"))
		assertEnded(t, stolen, "stolen before a change on the account page")
	})

	t.Run("expired", func(t *testing.T) {
		for _, column := range []string{"expires_at", "idle_expires_at"} {
			b := newBrowser(t)
			b.login(c, "alice", "another fresh password")
			stolen := b.cookie(c)
			require.Equal(t, http.StatusOK, me(t, stolen).StatusCode)
			db.exec(t, `UPDATE pgsession.sessions SET `+column+` = now() - interval '1 minute'
				WHERE id = encode(sha256(convert_to($1, 'UTF8')), 'hex')`, stolen)
			assertEnded(t, stolen, column+" passed")
		}
	})
}

// ---------------------------------------------------------------------------
// 5. The admin token

// An attacker tries to get into the admin routes with a guessed, truncated or
// misplaced token. Only the exact token in the X-Admin-Token header opens
// them; a token too short to resist guessing is refused at configuration;
// and with neither a token nor an admin user the routes do not exist.
func TestAdminTokenOpensTheAdminRoutesOnlyExactlyAndAsAHeader(t *testing.T) {
	t.Parallel()
	const token = "Zq4vT9kLmN2pR7sW1xYb3cD5fG8hJ0aE6uI_oK-w"
	require.Len(t, token, 40)
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: "admin_token " + token})
	users := c.url("/api/auth/admin/users")

	wrong := token[:39] + "x"
	for what, header := range map[string][]string{
		"no token":             nil,
		"a wrong token":        {"X-Admin-Token", wrong},
		"a short token":        {"X-Admin-Token", token[:10]},
		"the token but one":    {"X-Admin-Token", token[:39]},
		"the token and more":   {"X-Admin-Token", token + "x"},
		"the token, lowercase": {"X-Admin-Token", strings.ToLower(token)},
		"a wrong bearer token": {"Authorization", "Bearer " + wrong},
		"the token as Basic":   {"Authorization", "Basic " + token},
	} {
		resp := sendRaw(t, http.MethodGet, users, "", header...)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: %s", what, resp.body)
		assert.NotContains(t, resp.body, token, what)
	}
	for _, query := range []string{"admin_token", "token", "X-Admin-Token"} {
		resp := sendRaw(t, http.MethodGet, users+"?"+query+"="+url.QueryEscape(token), "")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "?%s=: %s", query, resp.body)
	}
	resp := sendRaw(t, http.MethodGet, users, "", "X-Admin-Token", token)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Len(t, resp.list(t), 1)
	resp = sendRaw(t, http.MethodGet, users, "", "Authorization", "Bearer "+token)
	require.Equal(t, http.StatusOK, resp.StatusCode, "a bearer token, which Caddy's logs redact, works too: %s", resp.body)

	t.Run("no token and no admin: no admin routes", func(t *testing.T) {
		db := newTestDB(t)
		db.addUser(t, "alice", "correct horse battery")
		c := startSite(t, siteOptions{db: db.url})
		b := newBrowser(t)
		b.login(c, "alice", "correct horse battery")
		routes := [][2]string{
			{"GET", "/api/auth/admin/users"},
			{"POST", "/api/auth/admin/users"},
			{"DELETE", "/api/auth/admin/users/alice"},
			{"GET", "/api/auth/admin/users/alice/sessions"},
			{"DELETE", "/api/auth/admin/users/alice/sessions"},
			{"DELETE", "/api/auth/admin/sessions/00000000-0000-0000-0000-000000000000"},
		}
		for _, rt := range routes {
			resp := sendRaw(t, rt[0], c.url(rt[1]), "")
			assert.Equal(t, http.StatusNotFound, resp.StatusCode, "%s %s anonymously: %s", rt[0], rt[1], resp.body)
			resp = b.send(rt[0], c.url(rt[1]), nil)
			assert.Equal(t, http.StatusNotFound, resp.StatusCode, "%s %s as alice: %s", rt[0], rt[1], resp.body)
		}
		db.addBcryptUser(t, "root", "root's own password", true)
		assert.Equal(t, http.StatusForbidden, b.get(c.url("/api/auth/admin/users")).StatusCode,
			"once an admin exists the routes are on, and alice is not one")
	})
}

// ---------------------------------------------------------------------------
// 6. Input limits

// An attacker sends what no form would: huge bodies, overlong names and
// passwords, JSON built to confuse parsers, and garbage cookies. Each gets a
// clear 4xx, never a 500, and nothing is looked up or hashed for input no
// account could match.
func TestOversizedAndMalformedInputIsRefusedClearly(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addBcryptUser(t, "alice", "correct horse battery", false)
	c := startSite(t, siteOptions{db: db.url, handler: "registration on\n\t\tadmin_token " + testAdminToken})
	token, _ := db.sessionInDB(t, alice)
	jsonType := []string{"Content-Type", "application/json"}
	formType := []string{"Content-Type", "application/x-www-form-urlencoded"}
	withSession := []string{"Cookie", cookieHeader(token)}
	asAdmin := []string{"X-Admin-Token", testAdminToken}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	checked := 0
	expect := func(t *testing.T, status int, message, path, body string, header ...string) {
		t.Helper()
		checked++
		resp := sendRaw(t, http.MethodPost, c.url(path), body, header...)
		assert.NotEqual(t, http.StatusInternalServerError, resp.StatusCode, "%s: %s", path, resp.body)
		if assert.Equal(t, status, resp.StatusCode, "%s %.80q: %s", path, body, resp.body) && message != "" {
			assert.Equal(t, message, resp.json(t)["error"], "%s %.80q", path, body)
		}
	}

	t.Run("bodies over 64 KiB", func(t *testing.T) {
		big := strings.Repeat("a", 65<<10)
		const tooLarge = "Request body too large"
		expect(t, 413, tooLarge, "/api/auth/login", `{"username":"alice","password":"`+big+`"}`, jsonType...)
		expect(t, 413, tooLarge, "/api/auth/login", "username=alice&password="+big, formType...)
		expect(t, 413, tooLarge, "/login", "username=alice&password="+big, formType...)
		expect(t, 413, tooLarge, "/api/auth/register", `{"username":"bob","password":"`+big+`"}`, jsonType...)
		expect(t, 413, tooLarge, "/api/auth/password", `{"current_password":"`+big+`","new_password":"x"}`, cat(jsonType, withSession)...)
		expect(t, 413, tooLarge, "/account", "action=password&current_password="+big+"&new_password=x", cat(formType, withSession)...)
		expect(t, 413, tooLarge, "/api/auth/admin/users", `{"username":"carol","password":"`+big+`"}`, cat(jsonType, asAdmin)...)

		var mp bytes.Buffer
		w := multipart.NewWriter(&mp)
		w.WriteField("username", "alice")
		w.WriteField("password", big)
		w.Close()
		expect(t, 413, tooLarge, "/api/auth/login", mp.String(), "Content-Type", w.FormDataContentType())

		// Without Content-Length (chunked), the limit holds all the same.
		req, err := http.NewRequest(http.MethodPost, c.url("/api/auth/login"),
			io.MultiReader(strings.NewReader(`{"username":"alice","password":"`), strings.NewReader(big), strings.NewReader(`"}`)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := attackerClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "a chunked body")

		// Routes that take no body never read one: a big one is ignored, costs
		// nothing, and must not make them fail. (Another user, so alice's
		// session survives the revoke.)
		bob := db.addBcryptUser(t, "bob-with-a-big-body", "bob's own password", false)
		for _, path := range []string{"/api/auth/logout", "/logout", "/api/auth/sessions/revoke-others"} {
			throwaway, _ := db.sessionInDB(t, bob)
			resp := sendRaw(t, http.MethodPost, c.url(path), big, "Cookie", cookieHeader(throwaway))
			assert.Less(t, resp.StatusCode, 500, "%s with a big body: %s", path, resp.body)
		}
	})

	t.Run("overlong username", func(t *testing.T) {
		const msg = "Username is longer than 64 characters"
		for _, name := range []string{strings.Repeat("a", 65), strings.Repeat("é", 65), strings.Repeat("a", 10000)} {
			expect(t, 400, msg, "/api/auth/login", jsonText(t, map[string]string{"username": name, "password": "whatever pw"}), jsonType...)
			expect(t, 400, msg, "/login", url.Values{"username": {name}, "password": {"whatever pw"}}.Encode(), formType...)
			expect(t, 400, msg, "/api/auth/register", jsonText(t, map[string]string{"username": name, "password": "long enough password"}), jsonType...)
			expect(t, 400, msg, "/api/auth/admin/users", jsonText(t, map[string]string{"username": name, "password": "long enough password"}), cat(jsonType, asAdmin)...)
		}
		// 64 characters is a name like any other: an unknown one is a failed login.
		expect(t, 401, "Invalid username or password", "/api/auth/login",
			jsonText(t, map[string]string{"username": strings.Repeat("é", 64), "password": "whatever pw"}), jsonType...)
	})

	t.Run("overlong password", func(t *testing.T) {
		const msg = "Password is longer than 1024 bytes"
		long := strings.Repeat("p", 1025)
		expect(t, 400, msg, "/api/auth/login", jsonText(t, map[string]string{"username": "alice", "password": long}), jsonType...)
		expect(t, 400, msg, "/login", url.Values{"username": {"alice"}, "password": {long}}.Encode(), formType...)
		expect(t, 400, msg, "/api/auth/register", jsonText(t, map[string]string{"username": "bob", "password": long}), jsonType...)
		expect(t, 400, msg, "/api/auth/password", jsonText(t, map[string]string{"current_password": "correct horse battery", "new_password": long}), cat(jsonType, withSession)...)
		expect(t, 400, msg, "/api/auth/admin/users", jsonText(t, map[string]string{"username": "carol", "password": long}), cat(jsonType, asAdmin)...)
		// Multi-byte characters count as bytes: 342 × 3 bytes is 1026.
		expect(t, 400, msg, "/api/auth/login", jsonText(t, map[string]string{"username": "alice", "password": strings.Repeat("€", 342)}), jsonType...)
	})

	t.Run("JSON built to confuse", func(t *testing.T) {
		for path, fields := range map[string][2]string{
			"/api/auth/login":       {`"username":"alice","password":"correct horse battery"`, "username"},
			"/api/auth/register":    {`"username":"bob","password":"long enough password"`, "username"},
			"/api/auth/password":    {`"current_password":"correct horse battery","new_password":"a new password"`, "current_password"},
			"/api/auth/admin/users": {`"username":"carol","password":"long enough password"`, "username"},
		} {
			header := cat(jsonType, withSession, asAdmin)
			if path == "/api/auth/register" || path == "/api/auth/login" {
				header = jsonType
			}
			expect(t, 400, `Unknown field "is_admin_too"`, path, `{`+fields[0]+`,"is_admin_too":true}`, header...)
			expect(t, 400, `Field "`+fields[1]+`" given twice`, path, `{`+fields[0]+`,"`+fields[1]+`":"other"}`, header...)
			expect(t, 400, `Field "`+fields[1]+`" given twice`, path, `{"`+fields[1]+`":"other",`+fields[0]+`}`, header...)
			expect(t, 400, "", path, `{`+fields[0]+`} {}`, header...)
			expect(t, 400, "", path, `null`, header...)
			expect(t, 400, "", path, `[{`+fields[0]+`}]`, header...)
		}
		expect(t, 400, `Field "username" given twice`, "/api/auth/login", `{"username":"a","username":"b","password":"x"}`, jsonType...)
		expect(t, 400, `Field "username" given twice`, "/login", "username=alice&username=bob&password=x", formType...)
		assert.Equal(t, http.StatusOK, postLoginJSON(t, c, "alice", "correct horse battery").StatusCode, "none of that changed alice's password")
	})
	t.Logf("%d hostile bodies checked", checked)

	t.Run("garbage cookies", func(t *testing.T) {
		for what, value := range garbageCookies(t) {
			for _, path := range []string{"/api/auth/me", "/private"} {
				resp := sendRaw(t, http.MethodGet, c.url(path), "", "Cookie", "session="+value)
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s on %s: %s", what, path, resp.body)
			}
		}
		// Bytes no HTTP client library would send, written to the socket:
		// refused before or by the gate, never a 500.
		for what, value := range map[string]string{"NUL": "\x00\x00abc", "control bytes": "\x01\x02\x7f", "CR alone": "abc\rdef"} {
			status := rawGet(t, c, "/private", "Cookie: session="+value)
			assert.Contains(t, []int{http.StatusBadRequest, http.StatusUnauthorized}, status, what)
		}
	})
}

// garbageCookies are session cookie values a client might forge.
func garbageCookies(t *testing.T) map[string]string {
	t.Helper()
	// 4000 random bytes, limited to what may appear in a header value.
	raw := make([]byte, 4000)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	for i, b := range raw {
		if b < 0x21 || b == 0x7f || b == ';' {
			raw[i] = 'A' + b%26
		}
	}
	long := make([]byte, 3000)
	_, err = rand.Read(long)
	require.NoError(t, err)
	return map[string]string{
		"4000 random bytes":          string(raw),
		"4000 base64 characters":     base64.RawURLEncoding.EncodeToString(long),
		"not base64, token length":   strings.Repeat("!*~", store.TokenLength/3) + "!",
		"non-canonical padding bits": strings.Repeat("A", store.TokenLength-1) + "B",
		"percent-encoded NULs":       strings.Repeat("%00", 15),
		"a SQL injection":            "' OR '1'='1",
		"the token's hash":           strings.Repeat("ab", 32),
	}
}

// rawGet writes a GET request with extra header lines straight to a socket
// and returns the status code of the answer.
func rawGet(t *testing.T, c *testSite, path string, headerLines ...string) int {
	t.Helper()
	u, err := url.Parse(c.url(path))
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\n", path, u.Host)
	for _, line := range headerLines {
		req.WriteString(line + "\r\n")
	}
	req.WriteString("Connection: close\r\n\r\n")
	_, err = io.WriteString(conn, req.String())
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// A garbage cookie is turned away before any query: with PostgreSQL down,
// the answer is still 401, where a well-formed token has to ask the database
// (503). So forged cookies cannot load the database.
func TestGarbageCookiesCostNoQuery(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	db := testDBAt(t, srv.NewDatabase(t))
	c := startSite(t, siteOptions{db: db.url}) // the app has started: the database is stopped only now
	srv.Stop(t)
	for what, value := range garbageCookies(t) {
		resp := sendRaw(t, http.MethodGet, c.url("/private"), "", "Cookie", "session="+value)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: %s", what, resp.body)
	}
	wellFormed := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	resp := sendRaw(t, http.MethodGet, c.url("/private"), "", "Cookie", "session="+wellFormed)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "a well-formed token is looked up: %s", resp.body)
}

// ---------------------------------------------------------------------------
// 7. Response headers

// The browser-side defences: nothing about a login is cached, logout wipes
// what the browser holds, the login page cannot be framed (clickjacking) or
// made to run injected script or load anything from elsewhere, and a cookie
// name that needs HTTPS is never silently dropped.
func TestResponsesCarryTheBrowserSideDefences(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addBcryptUser(t, "alice", "correct horse battery", false)
	c := startSite(t, siteOptions{db: db.url, handler: "registration on"})

	t.Run("no-store", func(t *testing.T) {
		b := newBrowser(t)
		check := func(what string, resp reply) {
			t.Helper()
			assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"), "%s (%d)", what, resp.StatusCode)
		}
		check("login page", b.getPage(c.url("/login")))
		check("failed form login", b.postForm(c.url("/login"), url.Values{"username": {"alice"}, "password": {"wrong password"}}))
		check("failed JSON login", b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": "wrong password"}))
		check("me without a session", b.get(c.url("/api/auth/me")))
		check("GET on the login route", b.get(c.url("/api/auth/login")))
		check("JSON login", b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": "correct horse battery"}))
		check("me", b.get(c.url("/api/auth/me")))
		check("sessions", b.get(c.url("/api/auth/sessions")))
		check("account page", b.getPage(c.url("/account")))
		check("JSON logout", b.postJSON(c.url("/api/auth/logout"), nil))
		check("the gate's 401", b.get(c.url("/private")))
		check("the gate's redirect", b.getPage(c.url("/private")))
	})

	t.Run("login page", func(t *testing.T) {
		for _, resp := range []reply{
			newBrowser(t).getPage(c.url("/login?redirect=/docs/")),
			newBrowser(t).postForm(c.url("/login"), url.Values{"username": {"alice"}, "password": {"wrong password"}}),
		} {
			csp := resp.Header.Get("Content-Security-Policy")
			assert.Contains(t, csp, "default-src 'none'")
			assert.Contains(t, csp, "frame-ancestors 'none'")
			assert.NotContains(t, csp, "unsafe-inline")
			assert.NotContains(t, csp, "unsafe-eval")
			assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
			assert.Equal(t, "same-origin", resp.Header.Get("Referrer-Policy"))
			assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			assert.NotRegexp(t, `(?i)\b(src|href|action|formaction|srcset|poster|data)\s*=\s*["']?\s*(https?:)?//`, resp.body,
				"the page loads and sends nothing to other origins")
			assert.NotRegexp(t, `(?i)(url\(|@import)\s*["']?\s*(https?:)?//`, resp.body, "nor does its CSS")
			assert.NotRegexp(t, `(?i)<script[^>]`, resp.body, "its one script is inline, the passkey script, allowed by its hash")
			assert.Contains(t, csp, "script-src "+web.ScriptHash()+";")
		}
	})

	t.Run("Clear-Site-Data on logout", func(t *testing.T) {
		b := newBrowser(t)
		b.login(c, "alice", "correct horse battery")
		assert.Equal(t, `"cookies"`, b.postJSON(c.url("/api/auth/logout"), nil).Header.Get("Clear-Site-Data"))
		b.login(c, "alice", "correct horse battery")
		assert.Equal(t, `"cookies"`, b.postForm(c.url("/logout"), nil).Header.Get("Clear-Site-Data"))

		cache := startSite(t, siteOptions{db: db.url, handler: "clear_site_data_cache on"})
		b.login(cache, "alice", "correct horse battery")
		assert.Equal(t, `"cookies", "cache"`, b.postJSON(cache.url("/api/auth/logout"), nil).Header.Get("Clear-Site-Data"))
		b.login(cache, "alice", "correct horse battery")
		assert.Equal(t, `"cookies", "cache"`, b.postForm(cache.url("/logout"), nil).Header.Get("Clear-Site-Data"))
	})

	t.Run("__Host- cookie needs HTTPS", func(t *testing.T) {
		// That such a name with secure off is refused at configuration is
		// tested with caddy validate, in integration/.
		plain := startSite(t, siteOptions{db: db.url, handler: "cookie_name __Host-session\n\t\tregistration on"})
		for what, resp := range map[string]reply{
			"JSON login": postLoginJSON(t, plain, "alice", "correct horse battery"),
			"form login": sendRaw(t, http.MethodPost, plain.url("/login"), url.Values{"username": {"alice"}, "password": {"correct horse battery"}}.Encode(),
				"Content-Type", "application/x-www-form-urlencoded"),
			"registration": sendRaw(t, http.MethodPost, plain.url("/api/auth/register"),
				jsonText(t, map[string]string{"username": "newcomer", "password": "long enough password"}), "Content-Type", "application/json"),
		} {
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s over plain HTTP: %s", what, resp.body)
			assert.Contains(t, resp.body, "needs HTTPS", what)
			assert.Empty(t, resp.Header.Values("Set-Cookie"), "%s: no cookie the browser would drop", what)
		}
	})
}
