package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
	"github.com/pgsession/caddy-pgsession/internal/pgtest"
)

// The admin API on Caddy's own admin endpoint (the admin.api.pg_session
// module): an operator on the host manages users at
// localhost:<admin port>/pg-session/… with no admin_token, through the same
// routes as {api}/admin/… of a site.

// adminAPI is the module's address on c's admin endpoint.
func adminAPI(c *caddyServer, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/pg-session%s", c.site.AdminPort, path)
}

// startCaddyWithAdminAPI starts Caddy with s and waits until its
// pg_session app has started, from when on the module serves it: until
// then the admin endpoint, which is up first, answers 503.
func startCaddyWithAdminAPI(t *testing.T, s site) *caddyServer {
	t.Helper()
	c := startCaddy(t, s)
	op := newBrowser(t)
	require.Eventually(t, func() bool { return op.get(adminAPI(c, "/users")).StatusCode == http.StatusOK },
		30*time.Second, 20*time.Millisecond, "the admin API never answered")
	return c
}

// errorOf is the message of a JSON error answer.
func errorOf(t *testing.T, resp response) string {
	t.Helper()
	var body struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(resp.body), &body), "a JSON error: %s", resp.body)
	return body.Error
}

func TestAdminAPIOnCaddysAdminEndpoint(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	// No admin_token, no admin user: the site's admin routes are off.
	c := startCaddyWithAdminAPI(t, site{DatabaseURL: db.url})
	op := newBrowser(t)
	resp := op.get(c.url("/api/auth/admin/users"))
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the site's own admin API is off")
	assert.Contains(t, errorOf(t, resp), "Admin routes are off")

	resp = op.get(adminAPI(c, "/users"))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.JSONEq(t, `[]`, resp.body)

	// Create.
	resp = op.postJSON(adminAPI(c, "/users"), map[string]any{"username": "bob", "password": "correct horse battery"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, `"username":"bob"`)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))

	// List.
	resp = op.get(adminAPI(c, "/users"))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	var users []struct {
		Username string `json:"username"`
		IsAdmin  bool   `json:"is_admin"`
	}
	require.NoError(t, json.Unmarshal([]byte(resp.body), &users))
	require.Len(t, users, 1)
	assert.Equal(t, "bob", users[0].Username)
	assert.False(t, users[0].IsAdmin)

	// Bob signs in on the site; his sessions are listed here.
	bob := newBrowser(t)
	bob.login(c, "bob", "correct horse battery")
	resp = op.get(adminAPI(c, "/users/bob/sessions"))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, `"user_agent":"Go-http-client/1.1"`)

	// Change: a new password ends his session; admin rights.
	resp = op.send(http.MethodPatch, adminAPI(c, "/users/bob"), map[string]any{"password": "a new password for bob", "is_admin": true})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, `"ended":1`)
	assert.Equal(t, http.StatusUnauthorized, bob.get(c.url("/page")).StatusCode, "the new password ended the session")
	bob.login(c, "bob", "a new password for bob")
	resp = op.get(adminAPI(c, "/users"))
	require.NoError(t, json.Unmarshal([]byte(resp.body), &users))
	assert.True(t, users[0].IsAdmin)
	resp = op.get(adminAPI(c, "/users/bob/history"))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)

	// Groups too: whatever the site's admin API serves.
	resp = op.postJSON(adminAPI(c, "/groups"), map[string]any{"name": "ops"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	resp = op.send(http.MethodPut, adminAPI(c, "/users/bob/groups/ops"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)

	// Delete.
	resp = op.send(http.MethodDelete, adminAPI(c, "/users/bob"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Equal(t, http.StatusUnauthorized, bob.get(c.url("/page")).StatusCode, "his sessions went with him")
	resp = op.get(adminAPI(c, "/users"))
	assert.JSONEq(t, `[]`, resp.body)

	// The log names who acted.
	require.Eventually(t, func() bool {
		return strings.Contains(c.logs(), `"user deleted"`) && strings.Contains(c.logs(), `"admin":"caddy admin endpoint"`)
	}, 10*time.Second, 20*time.Millisecond)

	// After a reload the module serves the new config's app.
	c.reload(site{DatabaseURL: db.url, HandlerOptions: "public /health"})
	op.client.CloseIdleConnections()
	require.Eventually(t, func() bool { return op.get(adminAPI(c, "/users")).StatusCode == http.StatusOK },
		10*time.Second, 20*time.Millisecond)
	resp = op.postJSON(adminAPI(c, "/users"), map[string]any{"username": "carol", "password": "correct horse battery"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	assert.Contains(t, op.get(adminAPI(c, "/users")).body, `"username":"carol"`)
}

func TestAdminAPIOnCaddysAdminEndpointRefuses(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startCaddyWithAdminAPI(t, site{DatabaseURL: db.url})
	op := newBrowser(t)

	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		message            string
	}{
		{"an unknown user", http.MethodDelete, "/users/nobody", nil, http.StatusNotFound, "No such user"},
		{"an unknown user's sessions", http.MethodGet, "/users/nobody/sessions", nil, http.StatusNotFound, "No such user"},
		{"a body that is no JSON object", http.MethodPost, "/users", "not an object", http.StatusBadRequest, ""},
		{"a field of no such name", http.MethodPost, "/users", map[string]any{"username": "carol", "password": "correct horse battery", "admin": true},
			http.StatusBadRequest, ""},
		{"a taken name", http.MethodPost, "/users", map[string]any{"username": "alice", "password": "correct horse battery"},
			http.StatusConflict, "already exists"},
		{"nothing to change", http.MethodPatch, "/users/alice", map[string]any{}, http.StatusBadRequest, "Nothing to change"},
		{"a path of no admin route", http.MethodGet, "/nothing", nil, http.StatusNotFound, "no pg_session admin route at /pg-session/nothing"},
		{"a method the path does not take", http.MethodPut, "/users", nil, http.StatusMethodNotAllowed, "Method not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := op.send(tc.method, adminAPI(c, tc.path), tc.body)
			require.Equal(t, tc.status, resp.StatusCode, resp.body)
			assert.Contains(t, errorOf(t, resp), tc.message)
		})
	}

	// A page on another site cannot act through an operator's browser:
	// Caddy's admin endpoint refuses the origin.
	resp := op.send(http.MethodDelete, adminAPI(c, "/users/alice"), nil, "Origin", "https://evil.example")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.body)
	resp = op.get(adminAPI(c, "/users"))
	assert.Contains(t, resp.body, `"username":"alice"`, "alice is still there")
}

// Without a pg_session app, or with its database down, the module says so
// with 503.
func TestAdminAPIOnCaddysAdminEndpointUnavailable(t *testing.T) {
	t.Parallel()
	t.Run("no pg_session app", func(t *testing.T) {
		t.Parallel()
		port, admin := freePort(t), freePort(t)
		caddyfile := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tauto_https off\n}\nhttp://127.0.0.1:%d {\n\trespond \"hello\"\n}\n", admin, port)
		caddyproc.Start(t, caddyBinary, caddyfile, fmt.Sprintf("http://127.0.0.1:%d/", port), admin)
		resp := newBrowser(t).get(fmt.Sprintf("http://127.0.0.1:%d/pg-session/users", admin))
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, resp.body)
		assert.Contains(t, errorOf(t, resp), "no pg_session app is running")
	})
	t.Run("database down", func(t *testing.T) {
		t.Parallel()
		srv := pgtest.NewServer(t)
		db := newDatabaseAt(t, srv.NewDatabase(t))
		c := startCaddyWithAdminAPI(t, site{DatabaseURL: db.url})
		op := newBrowser(t)
		db.pool.Close()
		srv.Stop(t)
		resp := op.get(adminAPI(c, "/users"))
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, resp.body)
		assert.NotEmpty(t, errorOf(t, resp))
	})
}
