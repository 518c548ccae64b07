package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

func TestIdleSessionEndsBeforeItsLifetime(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	token, created, err := s.CreateSession(ctx, store.SessionParams{User: *alice, Lifetime: time.Hour, IdleTimeout: 10 * time.Minute})
	require.NoError(t, err)
	require.NotNil(t, created.IdleExpiresAt)
	assert.WithinDuration(t, created.CreatedAt.Add(10*time.Minute), *created.IdleExpiresAt, time.Second)

	// Unused for eleven minutes: over, although its lifetime has most of an hour to go.
	exec(t, s, `UPDATE pgsession.sessions SET last_seen_at = now() - interval '11 minutes',
		idle_expires_at = now() - interval '1 minute'`)
	got, err := s.GetSession(ctx, token)
	require.NoError(t, err)
	assert.Nil(t, got)
	sessions, err := s.GetUserSessions(ctx, alice.ID)
	require.NoError(t, err)
	assert.Empty(t, sessions)

	n, err := s.CleanupExpiredSessions(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "the cleanup removes idle sessions too")
}

func TestTouchSessionWritesAtMostOncePerInterval(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	token, _, err := s.CreateSession(ctx, store.SessionParams{User: *alice, Lifetime: time.Hour, IdleTimeout: 10 * time.Minute})
	require.NoError(t, err)
	id := store.HashToken(token)

	touch, err := s.TouchSession(ctx, id, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, store.SessionTouchedRecently, touch, "a session used less than a minute ago is not written")

	exec(t, s, `UPDATE pgsession.sessions SET last_seen_at = now() - interval '2 minutes',
		idle_expires_at = now() + interval '8 minutes'`)
	touch, err = s.TouchSession(ctx, id, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, store.SessionTouched, touch)
	got, err := s.GetSession(ctx, token)
	require.NoError(t, err)
	assert.WithinDuration(t, got.CheckedAt, got.LastSeenAt, 5*time.Second)
	assert.WithinDuration(t, got.CheckedAt.Add(10*time.Minute), *got.IdleExpiresAt, 5*time.Second, "use pushes the idle expiry back")

	touch, err = s.TouchSession(ctx, id, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, store.SessionTouchedRecently, touch, "the second touch within the interval writes nothing")

	// An expired session is not brought back by a touch.
	exec(t, s, `UPDATE pgsession.sessions SET last_seen_at = now() - interval '2 minutes', expires_at = now() - interval '1 second'`)
	touch, err = s.TouchSession(ctx, id, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, store.SessionGone, touch)
}

// A touch tells a session whose row is gone, or whose credentials changed,
// from one written recently, whether or not it is due a write: that is how a
// server learns of a deletion no trigger announced.
func TestTouchSessionSaysWhenTheSessionIsGone(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	touch := func(token string) store.Touch {
		t.Helper()
		got, err := s.TouchSession(ctx, store.HashToken(token), time.Minute)
		require.NoError(t, err)
		return got
	}

	recent, deleted := login(t, s, alice), login(t, s, alice)
	// As pg_restore --disable-triggers and logical replication delete: no trigger runs.
	require.NoError(t, pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM pgsession.sessions WHERE id = $1`, string(store.HashToken(deleted)))
		return err
	}))
	assert.Equal(t, store.SessionTouchedRecently, touch(recent))
	assert.Equal(t, store.SessionGone, touch(deleted), "not due a write, and gone")
	exec(t, s, `UPDATE pgsession.sessions SET last_seen_at = now() - interval '2 minutes'`)
	assert.Equal(t, store.SessionGone, touch(deleted), "due a write, and gone")
	assert.Equal(t, store.SessionGone, touch("never-a-session"))

	_, err := s.ChangePassword(ctx, alice.ID, "another fine password", "")
	require.NoError(t, err)
	assert.Equal(t, store.SessionGone, touch(recent), "made under the old password")
}

func TestMaxSessionsPerUserEndsTheLeastRecentlyUsed(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	bobs := login(t, s, bob)
	create := func() string {
		token, _, err := s.CreateSession(ctx, store.SessionParams{User: *alice, Lifetime: time.Hour, MaxPerUser: 2})
		require.NoError(t, err)
		return token
	}
	first, second := create(), create()
	// The first was used more recently than the second.
	exec(t, s, `UPDATE pgsession.sessions SET last_seen_at = now() - interval '1 hour' WHERE id = $1`, store.HashToken(second))
	third := create()

	for token, alive := range map[string]bool{first: true, second: false, third: true, bobs: true} {
		got, err := s.GetSession(ctx, token)
		require.NoError(t, err)
		assert.Equal(t, alive, got != nil)
	}
}

func TestSessionHandles(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	a1, a2 := login(t, s, alice), login(t, s, alice)
	b1 := login(t, s, bob)
	sessions, err := s.GetUserSessions(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, sessions, 2)
	for _, sess := range sessions {
		assert.Len(t, sess.Handle, 36)
		assert.NotEqual(t, string(sess.ID), string(sess.Handle))
		assert.NotContains(t, []string{a1, a2, string(store.HashToken(a1)), string(store.HashToken(a2))}, string(sess.Handle))
	}
	handle := sessions[0].Handle

	ended, err := s.DeleteUserSessionByHandle(ctx, bob.ID, handle)
	require.NoError(t, err)
	assert.False(t, ended, "bob cannot end alice's session")
	ended, err = s.DeleteUserSessionByHandle(ctx, alice.ID, handle)
	require.NoError(t, err)
	assert.True(t, ended)
	owner, err := s.DeleteSessionByHandle(ctx, "not-a-handle")
	require.NoError(t, err)
	assert.Empty(t, owner)

	remaining, err := s.GetUserSessions(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, remaining, 1)
	owner, err = s.DeleteSessionByHandle(ctx, remaining[0].Handle)
	require.NoError(t, err)
	assert.Equal(t, alice.ID, owner, "an admin can end any session, and learns whose it was")

	c1, c2 := login(t, s, alice), login(t, s, alice)
	n, err := s.DeleteOtherSessions(ctx, alice.ID, c1)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	for token, alive := range map[string]bool{c1: true, c2: false, b1: true} {
		got, err := s.GetSession(ctx, token)
		require.NoError(t, err)
		assert.Equal(t, alive, got != nil)
	}
}

// The gate's lookup reads the same session as GetSession, and nothing for a
// session that is gone.
func TestCheckSessionReadsWhatGetSessionReads(t *testing.T) {
	t.Parallel()
	s := newStore(t, store.Options{})
	ctx := context.Background()
	alice := newUser(t, s, "alice")
	for _, idle := range []time.Duration{0, 10 * time.Minute} {
		token, _, err := s.CreateSession(ctx, store.SessionParams{User: *alice, Lifetime: time.Hour, IdleTimeout: idle})
		require.NoError(t, err)
		full, err := s.GetSession(ctx, token)
		require.NoError(t, err)
		live, found, err := s.CheckSession(ctx, store.HashToken(token))
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, full.Live().UserID, live.UserID)
		assert.Equal(t, "alice", live.Username)
		assert.Equal(t, full.User.IsAdmin, live.IsAdmin)
		assert.Equal(t, idle, live.IdleTimeout)
		assert.WithinDuration(t, full.ExpiresAt, live.ExpiresAt, 0)
		assert.WithinDuration(t, full.LastSeenAt, live.LastSeenAt, 0)
		assert.Equal(t, idle == 0, live.IdleExpiresAt.IsZero(), "idle expiry only with an idle timeout")
		assert.False(t, live.CheckedAt.IsZero())

		err = s.DeleteSession(ctx, token)
		require.NoError(t, err)
		_, found, err = s.CheckSession(ctx, store.HashToken(token))
		require.NoError(t, err)
		assert.False(t, found, "a deleted session")
	}
	_, found, err := s.CheckSession(ctx, "not-an-id")
	require.NoError(t, err)
	assert.False(t, found)
}
