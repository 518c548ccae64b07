package pgsession

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// The audit trail of admin actions, as an admin's story: what each action
// left in the trail, with whom, on what, how it ended and from where.

const auditAdminToken = "an admin token that is long enough to pass"

// auditTrail waits until the trail holds n entries and returns them, oldest
// first: the entry of an action is written as its answer goes out.
func (db *testDB) auditTrail(t *testing.T, n int) []store.AuditEntry {
	t.Helper()
	var entries []store.AuditEntry
	require.Eventually(t, func() bool {
		var err error
		entries, err = db.store.AuditLog(t.Context(), store.AuditQuery{Limit: store.MaxAuditLimit})
		require.NoError(t, err)
		return len(entries) >= n
	}, 10*time.Second, 10*time.Millisecond, "the trail has fewer than %d entries", n)
	require.Len(t, entries, n, "no more entries than actions")
	for i, j := 0, len(entries)-1; i < j; i, j = i+1, j-1 {
		entries[i], entries[j] = entries[j], entries[i]
	}
	return entries
}

// auditText is the whole audit table as text, to look for what must never
// be stored.
func (db *testDB) auditText(t *testing.T) string {
	t.Helper()
	return db.queryText(t, `SELECT coalesce(string_agg(a::text, ' '), '') FROM pgsession.audit_log a`)
}

// entryOf is the part of an entry a test names: who, what, on what, how it
// ended and from where.
type entryOf struct {
	actorID                       store.UserID
	actor, action, target, remote string
	status                        int
}

func summary(e store.AuditEntry) entryOf {
	return entryOf{e.ActorID, e.Actor, e.Action, e.Target, e.Remote, e.Status}
}

// Each admin action of the JSON API is recorded once, under its name, with
// the admin who made it (by session, by name and id; by the admin token, as
// "admin token"), its target, its status and the client's address.
func TestEveryAdminActionIsRecorded(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	root := db.addAdmin(t, "root", "correct horse battery")
	alice := db.addUser(t, "alice", "correct horse battery")
	_, handle := db.sessionInDB(t, alice)
	c := startSite(t, siteOptions{db: db.url, handler: `admin_token "` + auditAdminToken + `"`, trustForwardedFor: true})
	admin := newBrowser(t)
	admin.login(c, "root", "correct horse battery")
	fromSession := []string{"X-Forwarded-For", "198.51.100.7"}
	fromToken := []string{"X-Admin-Token", auditAdminToken, "X-Forwarded-For", "203.0.113.9"}

	api := c.url("/api/auth/admin")
	for _, step := range []struct {
		method, path string
		body         any
		header       []string
		status       int
	}{
		{http.MethodPost, "/users", map[string]any{"username": "bob", "password": "another good password"}, fromSession, 201},
		{http.MethodPost, "/groups", map[string]any{"name": "editors"}, fromToken, 201},
		{http.MethodPut, "/users/bob/groups/editors", nil, fromSession, 200},
		{http.MethodDelete, "/users/bob/groups/editors", nil, fromToken, 200},
		{http.MethodPatch, "/users/alice", map[string]any{"is_admin": false}, fromSession, 200},
		{http.MethodDelete, "/sessions/" + handle, nil, fromToken, 200},
		{http.MethodDelete, "/users/alice/sessions", nil, fromSession, 200},
		{http.MethodDelete, "/users/alice/second-factors", nil, fromToken, 200},
		{http.MethodDelete, "/groups/editors", nil, fromSession, 200},
		{http.MethodDelete, "/users/bob", nil, fromToken, 200},
		{http.MethodGet, "/users", nil, fromToken, 200}, // a GET changes nothing and is not recorded
	} {
		resp := admin.send(step.method, api+step.path, step.body, step.header...)
		require.Equal(t, step.status, resp.StatusCode, "%s %s: %s", step.method, step.path, resp.body)
	}

	bySession := func(action, target string, status int) entryOf {
		return entryOf{root.ID, "root", action, target, "198.51.100.7", status}
	}
	byToken := func(action, target string, status int) entryOf {
		return entryOf{"", "admin token", action, target, "203.0.113.9", status}
	}
	want := []entryOf{
		bySession("user.create", "bob", 201),
		byToken("group.create", "editors", 201),
		bySession("group.join", "bob → editors", 200),
		byToken("group.leave", "bob → editors", 200),
		bySession("user.change", "alice", 200),
		byToken("session.end", handle, 200),
		bySession("user.sessions_end", "alice", 200),
		byToken("user.second_factors_reset", "alice", 200),
		bySession("group.delete", "editors", 200),
		byToken("user.delete", "bob", 200),
	}
	var got []entryOf
	for _, e := range db.auditTrail(t, len(want)) {
		got = append(got, summary(e))
		assert.WithinDuration(t, time.Now(), e.At, time.Minute)
	}
	assert.Equal(t, want, got)
}

// A refused action is recorded with the status it was refused with; a
// password set by PATCH is named as changed, and is nowhere in the trail
// or the log.
func TestARefusedActionAndAPasswordChangeAreRecordedWithoutThePassword(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: `admin_token "` + auditAdminToken + `"`})
	const secret = "a brand new secret passphrase"
	token := []string{"X-Admin-Token", auditAdminToken}

	resp := sendRaw(t, http.MethodDelete, c.url("/api/auth/admin/users/nobody"), "", token...)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp = sendRaw(t, http.MethodPatch, c.url("/api/auth/admin/users/alice"), jsonText(t, map[string]any{"password": secret, "is_admin": true}),
		append(token, "Content-Type", "application/json")...)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	resp = sendRaw(t, http.MethodPatch, c.url("/api/auth/admin/users/alice"), jsonText(t, map[string]any{"password": "short"}),
		append(token, "Content-Type", "application/json")...)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, resp.body)

	entries := db.auditTrail(t, 3)
	assert.Equal(t, entryOf{"", "admin token", "user.delete", "nobody", "127.0.0.1", 404}, summary(entries[0]))
	assert.Equal(t, entryOf{"", "admin token", "user.change", "alice", "127.0.0.1", 200}, summary(entries[1]))
	assert.Equal(t, "is_admin=true, password", entries[1].Detail, "the fields changed, by name")
	assert.Equal(t, 400, entries[2].Status)
	assert.Equal(t, "password", entries[2].Detail)

	text := db.auditText(t)
	for _, s := range []string{secret, "short", auditAdminToken} {
		assert.NotContains(t, text, s, "the trail holds no password or token")
		assert.NotContains(t, c.logs(), s, "nor does the log")
	}
}

// An admin request refused before it is served is recorded as denied,
// naming the route attempted and the user who attempted it; one with no
// credential at all names nobody and is not.
func TestDeniedAdminRequestsAreRecorded(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addAdmin(t, "root", "correct horse battery")
	mallory := db.addUser(t, "mallory", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: `admin_token "` + auditAdminToken + `"`})

	resp := sendRaw(t, http.MethodDelete, c.url("/api/auth/admin/users/root"), "", "X-Admin-Token", "a wrong token of the right length, or not")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	user := newBrowser(t)
	user.login(c, "mallory", "correct horse battery")
	resp = user.send(http.MethodPatch, c.url("/api/auth/admin/users/mallory"), map[string]any{"is_admin": true})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp = sendRaw(t, http.MethodDelete, c.url("/api/auth/admin/users/root"), "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no credential")

	entries := db.auditTrail(t, 2)
	assert.Equal(t, entryOf{"", "invalid admin token", "denied", "root", "127.0.0.1", 401}, summary(entries[0]))
	assert.Equal(t, "user.delete", entries[0].Detail)
	assert.Equal(t, entryOf{mallory.ID, "mallory", "denied", "mallory", "127.0.0.1", 403}, summary(entries[1]))
	assert.Equal(t, "user.change", entries[1].Detail)
	assert.True(t, c.logged(t, "admin request denied"), "and logged")
	assert.False(t, strings.Contains(c.logs(), "a wrong token of the right length"), "never the token tried")
	assert.True(t, db.userNamed(t, "root").IsAdmin)
}

// A flood of wrong admin tokens is recorded at a bounded rate: the burst,
// then one a second, and the next entry written counts what was not.
func TestAFloodOfWrongTokensIsRecordedAtABoundedRate(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	c := startSite(t, siteOptions{db: db.url, handler: `admin_token "` + auditAdminToken + `"`})
	wrong := func() {
		resp := sendRaw(t, http.MethodDelete, c.url("/api/auth/admin/users/root"), "", "X-Admin-Token", "not the token")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	start := time.Now()
	for range 60 {
		wrong()
	}
	recorded := db.count(t, `SELECT count(*) FROM pgsession.audit_log`)
	assert.GreaterOrEqual(t, recorded, 30, "the burst is recorded")
	assert.LessOrEqual(t, recorded, 31+int(time.Since(start)/time.Second), "then one a second")

	require.Eventually(t, func() bool {
		wrong()
		return db.count(t, `SELECT count(*) FROM pgsession.audit_log WHERE detail LIKE '%more denied requests%'`) > 0
	}, 10*time.Second, 100*time.Millisecond, "the next entry written says how many were not")
}
