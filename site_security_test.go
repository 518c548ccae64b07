package pgsession

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
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

// ---------------------------------------------------------------------------
// 4. Session fixation and hijacking

// ---------------------------------------------------------------------------
// 5. The admin token

// ---------------------------------------------------------------------------
// 6. Input limits

// ---------------------------------------------------------------------------
// 7. Response headers
