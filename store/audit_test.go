package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// recordAudit records each of entries in turn.
func recordAudit(t *testing.T, s *store.Store, entries ...store.AuditEntry) {
	t.Helper()
	for _, e := range entries {
		require.NoError(t, s.RecordAudit(t.Context(), e))
	}
}

// An entry comes back as it was recorded, with the database's id and time;
// the command line's, with no user and no status, reads back as "" and 0.
func TestAuditEntriesReadBackAsRecorded(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	admin := newUser(t, s, "root")
	recordAudit(t, s, store.AuditEntry{ActorID: admin.ID, Actor: "root", Action: "user.change", Target: "alice",
		Detail: "is_admin=true", Remote: "192.0.2.7", Status: 200})
	recordAudit(t, s, store.AuditEntry{Actor: store.ActorCommandLine, Action: "group.create", Target: "editors"})
	recordAudit(t, s, store.AuditEntry{ActorID: "not-a-uuid", Actor: "x\xff" + strings.Repeat("y", 5000), Action: "denied", Status: 403})

	got, err := s.AuditLog(ctx, store.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, "denied", got[0].Action, "newest first")
	assert.Empty(t, got[0].ActorID, "an id that is no uuid is left out")
	assert.LessOrEqual(t, len(got[0].Actor), 1024, "a long text is cut")
	assert.True(t, strings.HasPrefix(got[0].Actor, "xy"), "invalid UTF-8 is dropped")
	cli := got[1]
	assert.Equal(t, store.AuditEntry{ID: cli.ID, At: cli.At, Actor: "command line", Action: "group.create", Target: "editors"}, cli)
	web := got[2]
	assert.Equal(t, store.AuditEntry{ID: web.ID, At: web.At, ActorID: admin.ID, Actor: "root", Action: "user.change",
		Target: "alice", Detail: "is_admin=true", Remote: "192.0.2.7", Status: 200}, web)
	assert.WithinDuration(t, time.Now(), web.At, time.Minute)
	assert.Less(t, web.ID, cli.ID)

	// The record outlives the admin it names.
	require.NoError(t, s.DeleteUser(ctx, "root"))
	got, err = s.AuditLog(ctx, store.AuditQuery{Actor: "root"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, admin.ID, got[0].ActorID)
}

// The trail pages by id, below the last id of a page, and each filter
// keeps the entries with exactly its value.
func TestAuditLogPagesAndFilters(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	for i := range 7 {
		actor, target := "root", "alice"
		if i%2 == 1 {
			actor, target = store.ActorAdminToken, "bob"
		}
		action := "user.delete"
		if i%3 == 0 {
			action = "user.create"
		}
		recordAudit(t, s, store.AuditEntry{Actor: actor, Action: action, Target: target, Status: 200})
	}

	var ids []int64
	q := store.AuditQuery{Limit: 3}
	for {
		page, err := s.AuditLog(ctx, q)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 3)
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			ids = append(ids, e.ID)
		}
		q.Before = page[len(page)-1].ID
	}
	require.Len(t, ids, 7, "every entry once")
	for i := 1; i < len(ids); i++ {
		assert.Greater(t, ids[i-1], ids[i], "newest first across pages")
	}

	for _, tc := range []struct {
		name string
		q    store.AuditQuery
		want int
	}{
		{"actor", store.AuditQuery{Actor: "admin token"}, 3},
		{"target", store.AuditQuery{Target: "alice"}, 4},
		{"action", store.AuditQuery{Action: "user.create"}, 3},
		{"all three", store.AuditQuery{Actor: "root", Target: "alice", Action: "user.create"}, 2},
		{"nothing matches", store.AuditQuery{Actor: "mallory"}, 0},
		{"a prefix is no match", store.AuditQuery{Target: "ali"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.AuditLog(ctx, tc.q)
			require.NoError(t, err)
			assert.Len(t, got, tc.want)
		})
	}
}

// The retention deletes the entries older than it and keeps the rest; 0
// keeps everything.
func TestCleanupAuditDeletesOldEntries(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	recordAudit(t, s, store.AuditEntry{Actor: "root", Action: "user.delete", Target: "old"})
	recordAudit(t, s, store.AuditEntry{Actor: "root", Action: "user.delete", Target: "new"})
	_, err := s.Pool().Exec(ctx, `UPDATE pgsession.audit_log SET at = now() - interval '400 days' WHERE target = 'old'`)
	require.NoError(t, err)

	n, err := s.CleanupAudit(ctx, 0)
	require.NoError(t, err)
	assert.Zero(t, n, "0 keeps the trail forever")
	n, err = s.CleanupAudit(ctx, 365*24*time.Hour)
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	got, err := s.AuditLog(ctx, store.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "new", got[0].Target)
}
