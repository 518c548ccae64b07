package pgsession

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// joinGroups creates the groups that do not exist yet and puts u in them.
func (db *testDB) joinGroups(t *testing.T, username string, groups ...string) {
	t.Helper()
	for _, g := range groups {
		db.exec(t, `INSERT INTO pgsession.groups (name) VALUES ($1) ON CONFLICT DO NOTHING`, g)
	}
	cliOK(t, db.url, "", append([]string{"user", "join", username}, groups...)...)
}

// The upstream learns a user's groups from X-Auth-Groups and the
// {http.auth.user.groups} placeholder; a client cannot send its own, and a
// user in no group gets no header at all.
func TestGroupsReachTheUpstreamAndCannotBeForged(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	db.addUser(t, "bob", "correct horse battery")
	db.joinGroups(t, "alice", "staff", "ops")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		groups, sent := r.Header["X-Auth-Groups"]
		fmt.Fprintf(w, "groups=%q sent=%v placeholder=%q", groups, sent, r.Header.Get("X-Groups-Placeholder"))
	})
	c := startSite(t, siteOptions{db: db.url, handler: "public /public/*",
		next: up.proxy("X-Groups-Placeholder", "{http.auth.user.groups}")})

	alice := newBrowser(t)
	resp := alice.get(c.url("/public/x"), "X-Auth-Groups", "admins")
	assert.Equal(t, `groups=[] sent=false placeholder=""`, resp.body, "a client-sent X-Auth-Groups never reaches the upstream")

	alice.login(c, "alice", "correct horse battery")
	for range 2 { // from the database, then from memory
		resp = alice.get(c.url("/app"), "X-Auth-Groups", "admins")
		assert.Equal(t, `groups=["ops,staff"] sent=true placeholder="ops,staff"`, resp.body)
	}
	me := alice.get(c.url("/api/auth/me")).json(t)
	assert.Equal(t, []any{"ops", "staff"}, me["groups"])

	bob := newBrowser(t)
	bob.login(c, "bob", "correct horse battery")
	resp = bob.get(c.url("/app"), "X-Auth-Groups", "admins")
	assert.Equal(t, `groups=[] sent=false placeholder=""`, resp.body, "a user in no group: no header")
	assert.Equal(t, []any{}, bob.get(c.url("/api/auth/me")).json(t)["groups"], `"groups":[], not null`)
}

// A change of membership made anywhere reaches every server's memory as
// fast as a revocation: the other server's next request sees the new
// groups, without waiting for the session to be checked again.
func TestAGroupChangeReachesEveryServer(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	const admin = "an admin token that is long enough to pass"
	alice := db.addUser(t, "alice", "correct horse battery")
	db.joinGroups(t, "alice", "staff")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Header.Get("X-Auth-Groups")) })
	a := startSite(t, siteOptions{db: db.url, handler: `admin_token "` + admin + `"`})
	b := startSite(t, siteOptions{db: db.url, next: up.proxy()})
	token, _ := db.sessionInDB(t, alice)
	groupsOnB := func() string {
		resp := sendRaw(t, http.MethodGet, b.url("/app"), "", "Cookie", cookieHeader(token))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		return resp.body
	}
	require.Equal(t, "staff", groupsOnB())
	require.Equal(t, "staff", groupsOnB(), "known to b")

	for _, tc := range []struct {
		name   string
		change func(t *testing.T)
		want   string
	}{
		{"joined on the command line", func(t *testing.T) { db.joinGroups(t, "alice", "ops") }, "ops,staff"},
		{"left on the command line", func(t *testing.T) { cliOK(t, db.url, "", "user", "leave", "alice", "staff") }, "ops"},
		{"group deleted", func(t *testing.T) { cliOK(t, db.url, "", "group", "delete", "ops") }, ""},
		{"hand-written SQL", func(t *testing.T) {
			db.exec(t, `INSERT INTO pgsession.groups (name) VALUES ('admins')`)
			db.exec(t, `INSERT INTO pgsession.user_groups (user_id, group_name) VALUES ($1, 'admins')`, alice.ID)
		}, "admins"},
	} {
		start := time.Now()
		tc.change(t)
		require.Eventually(t, func() bool { return groupsOnB() == tc.want }, 5*time.Second, time.Millisecond,
			"%s: b kept the old groups", tc.name)
		t.Logf("%s: b saw it after %v", tc.name, time.Since(start).Round(time.Millisecond))
	}
	resp := sendRaw(t, http.MethodGet, a.url("/api/auth/admin/users"), "", "Authorization", "Bearer "+admin)
	users := webtest.Decode[[]struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	}](t, resp.body)
	require.Len(t, users, 1)
	assert.Equal(t, []string{"admins"}, users[0].Groups, "the admin list shows each user's groups")
}

// The admin API manages groups and memberships, with the right status for
// each mistake, and a membership it changes holds from the next request.
func TestAdminAPIManagesGroups(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	const admin = "an admin token that is long enough to pass"
	db.addUser(t, "alice", "correct horse battery")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Header.Get("X-Auth-Groups")) })
	c := startSite(t, siteOptions{db: db.url, handler: `admin_token "` + admin + `"`, next: up.proxy()})
	call := func(method, path, body string) reply {
		t.Helper()
		return sendRaw(t, method, c.url("/api/auth/admin"+path), body, "Content-Type", "application/json", "Authorization", "Bearer "+admin)
	}
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	require.Equal(t, "", b.get(c.url("/app")).body)

	assert.Equal(t, http.StatusCreated, call(http.MethodPost, "/groups", `{"name":"staff"}`).StatusCode)
	for body, want := range map[string]int{
		`{"name":"staff"}`:   http.StatusConflict,
		`{"name":"Staff"}`:   http.StatusBadRequest,
		`{"name":"a b"}`:     http.StatusBadRequest,
		`{"name":""}`:        http.StatusBadRequest,
		`{"name":"x","y":1}`: http.StatusBadRequest,
		`not json`:           http.StatusBadRequest,
	} {
		resp := call(http.MethodPost, "/groups", body)
		assert.Equal(t, want, resp.StatusCode, "%s: %s", body, resp.body)
	}
	resp := call(http.MethodPut, "/users/alice/groups/staff", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, `"groups":["staff"]`)
	assert.Equal(t, http.StatusOK, call(http.MethodPut, "/users/alice/groups/staff", "").StatusCode, "joining again is no error")
	assert.Equal(t, "staff", b.get(c.url("/app")).body, "the next request has the new group")
	assert.JSONEq(t, `[{"name":"staff","members":1}]`, call(http.MethodGet, "/groups", "").body)

	assert.Equal(t, http.StatusNotFound, call(http.MethodPut, "/users/alice/groups/nobody", "").StatusCode)
	assert.Equal(t, http.StatusNotFound, call(http.MethodPut, "/users/nobody/groups/staff", "").StatusCode)
	assert.Equal(t, http.StatusBadRequest, call(http.MethodPut, "/users/alice/groups/BAD", "").StatusCode)

	resp = call(http.MethodDelete, "/users/alice/groups/staff", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, `"groups":[]`)
	assert.Equal(t, "", b.get(c.url("/app")).body)
	require.Equal(t, http.StatusOK, call(http.MethodPut, "/users/alice/groups/staff", "").StatusCode)
	resp = call(http.MethodDelete, "/groups/staff", "")
	assert.JSONEq(t, `{"name":"staff","members":1}`, resp.body)
	assert.Equal(t, http.StatusNotFound, call(http.MethodDelete, "/groups/staff", "").StatusCode)
	assert.Equal(t, "", b.get(c.url("/app")).body, "a deleted group is gone from its members' requests")
	assert.Equal(t, http.StatusUnauthorized, sendRaw(t, http.MethodGet, c.url("/api/auth/admin/groups"), "").StatusCode)
}

// A user taken out of a group is refused by a rule for that group on every
// server within a revocation's latency: memory keeps groups with the
// session, and the change is announced like a revocation.
func TestAUserRemovedFromAGroupIsRefusedOnTheOtherServer(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	db.joinGroups(t, "alice", "staff")
	b := startSite(t, siteOptions{db: db.url, handler: "allow /internal/* group staff"})
	token, _ := db.sessionInDB(t, alice)
	status := func() int {
		return sendRaw(t, http.MethodGet, b.url("/internal/plan"), "", "Cookie", cookieHeader(token)).StatusCode
	}
	require.Equal(t, http.StatusOK, status())
	require.Equal(t, http.StatusOK, status(), "known to b")
	start := time.Now()
	require.NoError(t, db.store.RemoveFromGroups(t.Context(), alice.ID, "staff"))
	require.Eventually(t, func() bool { return status() == http.StatusForbidden }, 5*time.Second, time.Millisecond,
		"b kept letting a former member in")
	t.Logf("b refused after %v", time.Since(start).Round(time.Millisecond))
}
