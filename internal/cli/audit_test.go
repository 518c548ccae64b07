package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// Every change the command line makes is recorded as the command line's,
// with no address and no status, and a command that changes nothing (a
// listing, a failure) records nothing.
func TestCommandLineChangesAreRecorded(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	session := addUser(t, s, "carol")
	newSession(t, s, session, "curl", "192.0.2.1")
	pw := testPassword + "\n"
	for _, args := range [][]string{
		{"user", "add", "alice", "--admin", "--password-stdin"},
		{"user", "passwd", "alice", "--password-stdin"},
		{"user", "admin", "alice", "off"},
		{"group", "add", "editors"},
		{"user", "join", "alice", "editors"},
		{"user", "leave", "alice", "editors"},
		{"group", "delete", "editors"},
		{"token", "add", "alice", "deploy"},
		{"token", "revoke", "alice", "deploy"},
		{"identity", "allow", "alice", "google", "alice@example.com"},
		{"identity", "unlink", "alice", "google"},
		{"sessions", "revoke", "carol"},
		{"user", "reset-2fa", "alice"},
		{"user", "delete", "alice"},
		{"user", "list"},
	} {
		executeOK(t, url, pw, args...)
	}
	r := executeDB(t, url, "", "user", "delete", "nobody")
	require.Error(t, r.err)

	entries, err := s.AuditLog(t.Context(), store.AuditQuery{})
	require.NoError(t, err)
	type row struct{ action, target, detail string }
	var got []row
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		assert.Equal(t, "command line", e.Actor)
		assert.Empty(t, e.ActorID)
		assert.Empty(t, e.Remote)
		assert.Zero(t, e.Status)
		got = append(got, row{e.Action, e.Target, e.Detail})
	}
	require.Len(t, got, 14, "one entry a change")
	assert.Equal(t, []row{
		{"user.create", "alice", "is_admin=true"},
		{"user.change", "alice", "password"},
		{"user.change", "alice", "is_admin=false"},
		{"group.create", "editors", ""},
		{"group.join", "alice → editors", ""},
		{"group.leave", "alice → editors", ""},
		{"group.delete", "editors", ""},
	}, got[:7])
	assert.Equal(t, "token.create", got[7].action)
	assert.Regexp(t, `^deploy \(ID \S+\)$`, got[7].detail, "the token's name and id, never the token")
	assert.Equal(t, row{"token.revoke", "alice", got[7].detail}, got[8])
	assert.Equal(t, []row{
		{"identity.allow", "alice", "google alice@example.com"},
		{"identity.unlink", "alice", "google"},
		{"user.sessions_end", "carol", ""},
		{"user.second_factors_reset", "alice", ""},
		{"user.delete", "alice", ""},
	}, got[9:])
	for _, e := range entries {
		assert.NotContains(t, fmt.Sprint(e), testPassword)
	}
}

// `audit` lists the trail newest first, as a table or JSON lines, and
// filters it by actor, target and action.
func TestAuditListsAndFilters(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	for _, e := range []store.AuditEntry{
		{Actor: "root", Action: "user.create", Target: "alice", Remote: "192.0.2.7", Status: 201},
		{Actor: "admin token", Action: "user.delete", Target: "bob", Remote: "2001:db8::1", Status: 404},
		{Actor: "command line", Action: "group.create", Target: "editors"},
		{Actor: "mallory\x1b[2J", Action: "denied", Target: "alice", Detail: "user.change", Remote: "203.0.113.9", Status: 403},
	} {
		require.NoError(t, s.RecordAudit(t.Context(), e))
	}
	all, err := s.AuditLog(t.Context(), store.AuditQuery{})
	require.NoError(t, err)

	rows := table(executeOK(t, url, "", "audit"))
	require.Len(t, rows, 5)
	assert.Equal(t, []string{"WHEN", "ACTOR", "ACTION", "TARGET", "STATUS", "FROM", "DETAIL"}, rows[0])
	assert.Equal(t, []string{formatTime(all[0].At), "mallory?[2J", "denied", "alice", "403", "203.0.113.9", "user.change"}, rows[1],
		"newest first; no control character reaches the terminal")
	assert.Equal(t, []string{formatTime(all[1].At), "command line", "group.create", "editors", "-", "-", "-"}, rows[2])
	assert.Equal(t, []string{formatTime(all[3].At), "root", "user.create", "alice", "201", "192.0.2.7", "-"}, rows[4])

	for _, tc := range []struct {
		args []string
		want []string // the actions listed
	}{
		{[]string{"--user", "root"}, []string{"user.create"}},
		{[]string{"--target", "alice"}, []string{"denied", "user.create"}},
		{[]string{"--action", "user.delete"}, []string{"user.delete"}},
		{[]string{"--limit", "2"}, []string{"denied", "group.create"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var actions []string
			for _, row := range table(executeOK(t, url, "", append([]string{"audit"}, tc.args...)...))[1:] {
				actions = append(actions, row[2])
			}
			assert.Equal(t, tc.want, actions)
		})
	}

	out := executeOK(t, url, "", "audit", "--json", "--action", "user.delete")
	var e map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &e), out)
	assert.Equal(t, "admin token", e["actor"])
	assert.Equal(t, "bob", e["target"])
	assert.EqualValues(t, 404, e["status"])
	assert.Equal(t, "2001:db8::1", e["remote"])
	assert.Equal(t, 4, strings.Count(executeOK(t, url, "", "audit", "--json"), "\n"), "one object a line")

	r := executeDB(t, url, "", "audit", "--action", "nothing.such")
	require.NoError(t, r.err)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "no admin actions recorded\n", r.stderr)
	r = executeDB(t, url, "", "audit", "--limit", "0")
	require.Error(t, r.err)
	assert.Equal(t, "--limit must be between 1 and 1000", r.err.Error())
}
