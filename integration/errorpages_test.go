package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
)

// With error_pages caddy, the site's own handle_errors answers every
// refusal, with Caddy's {err.*} placeholders and the reason; a browser
// without a session is still sent to the login page.
func TestRefusalsGoToTheSitesErrorPages(t *testing.T) {
	db := newDatabase(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := sessionInDB(t, db, alice)
	port, adminPort := freePort(t), freePort(t)
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	pg_session {
		database_url %s
	}
}
http://127.0.0.1:%d {
	pg_session {
		error_pages caddy
		max_failed_logins_per_account 1
	}
	respond "hello {http.auth.user.username}"
	handle_errors {
		respond "our page: {err.status_code} {http.auth.pg_session.reason}: {err.message}"
	}
}
`, adminPort, db.url, port)
	url := func(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", port, path) }
	caddyproc.Start(t, caddyBinary, caddyfile, url("/"), adminPort)

	for _, tc := range []struct {
		name   string
		send   func() response
		status int
		body   string
	}{
		{"a script without a session", func() response { return sendRaw(t, http.MethodGet, url("/page"), "") },
			401, "our page: 401 not_authenticated: Not authenticated"},
		{"a stale cookie", func() response {
			return sendRaw(t, http.MethodGet, url("/page"), "", "Cookie", sessionCookie(strings.Repeat("A", 42)+"E"))
		}, 401, "our page: 401 session_expired: Session expired"},
		{"a cross-site write", func() response {
			return sendRaw(t, http.MethodPost, url("/page"), "x", "Cookie", sessionCookie(token), "Sec-Fetch-Site", "cross-site")
		}, 403, "our page: 403 cross_origin: Cross-origin request refused"},
		{"a route's own error", func() response {
			return sendRaw(t, http.MethodDelete, url("/api/auth/sessions/00000000-0000-0000-0000-000000000000"), "", "Cookie", sessionCookie(token))
		}, 404, "our page: 404 no_such_session: No such session"},
		{"a wrong password", func() response { return postLoginJSON(t, &caddyServer{site: site{Port: port}}, "alice", "wrong guess") },
			401, "our page: 401 invalid_credentials: Invalid username or password"},
		{"a throttled login", func() response {
			return postLoginJSON(t, &caddyServer{site: site{Port: port}}, "alice", "another guess")
		},
			429, "our page: 429 throttled: Too many failed logins, try again later"},
	} {
		resp := tc.send()
		assert.Equal(t, tc.status, resp.StatusCode, tc.name)
		assert.Equal(t, tc.body, resp.body, tc.name)
		if tc.status == http.StatusTooManyRequests {
			retryAfter(t, resp, 15*60)
		}
	}
	resp := sendRaw(t, http.MethodGet, url("/page"), "", "Accept", "text/html")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a browser is still sent to the login page")
	assert.Equal(t, "/login?redirect=%2Fpage", resp.Header.Get("Location"))
	assert.Equal(t, "hello alice", sendRaw(t, http.MethodGet, url("/page"), "", "Cookie", sessionCookie(token)).body)
}
