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
	"testing"
	"time"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Input an attacker shapes: bodies too large or malformed, garbage cookies, and the defences a browser is told to apply.

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
