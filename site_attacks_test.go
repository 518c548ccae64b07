package pgsession

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What an attacker learns or gains from the login, planted session cookies and the admin token: nothing.

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
