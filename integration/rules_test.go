package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
	"github.com/pgsession/caddy-pgsession/store"
)

// join puts u in groups, creating those that do not exist.
func (db *database) join(t *testing.T, u *store.User, groups ...string) {
	t.Helper()
	ctx := context.Background()
	for _, g := range groups {
		if _, err := db.store.CreateGroup(ctx, g); err != nil {
			require.ErrorIs(t, err, store.ErrGroupExists)
		}
	}
	require.NoError(t, db.store.AddToGroups(ctx, u.ID, groups...))
}

// Each shape of rule, through a real Caddy: first match wins, an allow
// refuses whoever it does not name, a deny of a group lets the others on
// to the next rule, methods narrow a rule, and a path no rule matches is
// any signed-in user's. A refused script gets 403 {"error":"Forbidden"}, a
// refused browser a page naming who is signed in, and the site's
// handle_errors the reason forbidden.
func TestAccessRulesThroughCaddy(t *testing.T) {
	db := newDatabase(t)
	alice, root, bob, ivan := db.addUser(t, "alice", "correct horse battery"), db.addAdmin(t, "root", "root's long password"),
		db.addUser(t, "bob", "correct horse battery"), db.addUser(t, "ivan", "correct horse battery")
	db.join(t, alice, "staff")
	db.join(t, ivan, "interns", "staff")
	tokens := map[string]string{}
	for _, u := range []*store.User{alice, root, bob, ivan} {
		tokens[u.Username], _ = sessionInDB(t, db, u)
	}
	port, other, adminPort := freePort(t), freePort(t), freePort(t)
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	pg_session {
		database_url %s
	}
}
http://127.0.0.1:%d {
	pg_session {
		site_name "Intranet"
		# The site's own pages are under /admin: no admin page there.
		admin_path off
		public /assets/*
		allow /admin/* admin
		allow /internal/* group staff
		allow /reports/* method GET user ALICE
		deny /drafts/*
		deny /ops/* group interns
		allow /ops/* group staff
		allow /members/* any_user
	}
	respond "hello {http.auth.user.username} [{http.auth.user.groups}]"
}
http://127.0.0.1:%d {
	pg_session {
		error_pages caddy
		allow /admin/* admin
	}
	respond "hello {http.auth.user.username}"
	handle_errors {
		respond "our page: {err.status_code} {http.auth.pg_session.reason}"
	}
}
`, adminPort, db.url, port, other)
	url := func(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", port, path) }
	caddyproc.Start(t, caddyBinary, caddyfile, url("/assets/x"), adminPort)

	for _, tc := range []struct {
		user, method, path string
		status             int
	}{
		{"root", "GET", "/admin/users", 200},
		{"alice", "GET", "/admin/users", 403},
		{"alice", "GET", "/ADMIN/users", 403}, // case does not get round a rule
		{"alice", "GET", "//admin/users", 403},
		{"alice", "GET", "/internal/plan", 200},
		{"ivan", "GET", "/internal/plan", 200},
		{"bob", "GET", "/internal/plan", 403},
		{"root", "GET", "/internal/plan", 403}, // an allow names its subjects: admin rights are no group
		{"alice", "GET", "/reports/q3", 200},
		{"alice", "POST", "/reports/q3", 200}, // the rule is for GET: a POST goes on, and no later rule matches
		{"bob", "GET", "/reports/q3", 403},
		{"alice", "GET", "/drafts/new", 403},
		{"root", "GET", "/drafts/new", 403},
		{"ivan", "GET", "/ops/runbook", 403},
		{"alice", "GET", "/ops/runbook", 200},
		{"bob", "GET", "/ops/runbook", 403},
		{"bob", "GET", "/members/list", 200},
		{"bob", "GET", "/anything/else", 200}, // no rule: any signed-in user
	} {
		resp := sendRaw(t, tc.method, url(tc.path), "", "Cookie", sessionCookie(tokens[tc.user]), "Origin", url(""))
		assert.Equal(t, tc.status, resp.StatusCode, "%s %s %s: %s", tc.user, tc.method, tc.path, resp.body)
		if tc.status == http.StatusForbidden {
			assert.JSONEq(t, `{"error":"Forbidden"}`, resp.body, "%s %s", tc.user, tc.path)
		}
	}
	assert.Equal(t, "hello alice [staff]", sendRaw(t, http.MethodGet, url("/internal/plan"), "", "Cookie", sessionCookie(tokens["alice"])).body)
	assert.Equal(t, http.StatusUnauthorized, sendRaw(t, http.MethodGet, url("/admin/users"), "").StatusCode,
		"without a session a rule's path still asks for one")
	assert.Equal(t, http.StatusOK, sendRaw(t, http.MethodGet, url("/assets/x"), "").StatusCode, "public paths come before rules")

	page := sendRaw(t, http.MethodGet, url("/admin/users"), "", "Cookie", sessionCookie(tokens["alice"]), "Accept", "text/html")
	require.Equal(t, http.StatusForbidden, page.StatusCode)
	assert.Contains(t, page.body, "signed in as alice")
	assert.Contains(t, page.body, `action="/logout"`)
	assert.Contains(t, page.body, "Sign out")
	assert.Contains(t, page.body, "Back to Intranet")
	assert.NotContains(t, page.body, tokens["alice"])

	errURL := func(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", other, path) }
	resp := sendRaw(t, http.MethodGet, errURL("/admin/x"), "", "Cookie", sessionCookie(tokens["alice"]))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "our page: 403 forbidden", resp.body)
	assert.Equal(t, "hello root", sendRaw(t, http.MethodGet, errURL("/admin/x"), "", "Cookie", sessionCookie(tokens["root"])).body)

	metrics := sendRaw(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort), "").body
	assert.True(t, strings.Contains(metrics, `caddy_pg_session_gate_requests_total{outcome="forbidden"}`),
		"refusals by rule are counted as forbidden")
}
