package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// heard collects what a Listener passes on.
type heard struct {
	mu        sync.Mutex
	got       []store.Invalidation
	confirmed int
	lost      []error
}

func (h *heard) all() []store.Invalidation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]store.Invalidation(nil), h.got...)
}

func (h *heard) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = nil
}

// listen runs a Listener on url for the test and waits until it is caught up.
func listen(t *testing.T, s *store.Store, url string) *heard {
	t.Helper()
	h := &heard{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	l := &store.Listener{Store: s, ConnString: url, PingInterval: 50 * time.Millisecond,
		Invalidate: func(inv store.Invalidation) { h.mu.Lock(); h.got = append(h.got, inv); h.mu.Unlock() },
		Confirmed:  func(time.Time) { h.mu.Lock(); h.confirmed++; h.mu.Unlock() },
		Lost:       func(err error) { h.mu.Lock(); h.lost = append(h.lost, err); h.mu.Unlock() },
	}
	wg.Go(func() { l.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	require.Eventually(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.confirmed > 0 }, 10*time.Second, 5*time.Millisecond)
	return h
}

// waitFor polls until the listener heard an invalidation that match accepts.
func (h *heard) waitFor(t *testing.T, what string, match func(store.Invalidation) bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, inv := range h.all() {
			if match(inv) {
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "never heard %s; heard %+v", what, h.all())
}

// Every change that can make a kept session wrong is announced, whoever
// makes it, and nothing else is: renewals and the cleanup of sessions that
// had already expired say nothing.
func TestChangesThatEndSessionsAreAnnounced(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := newStoreAt(t, url, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	h := listen(t, s, url)
	h.waitFor(t, "the purge of a new connection", func(inv store.Invalidation) bool { return inv.All })

	sessionGone := func(token string) func(store.Invalidation) bool {
		return func(inv store.Invalidation) bool {
			for _, id := range inv.Sessions {
				if id == store.HashToken(token) {
					return true
				}
			}
			return false
		}
	}
	userChanged := func(u *store.User) func(store.Invalidation) bool {
		return func(inv store.Invalidation) bool {
			for _, id := range inv.Users {
				if id == u.ID {
					return true
				}
			}
			return false
		}
	}

	token := login(t, s, alice)
	require.NoError(t, s.DeleteSession(ctx, token))
	h.waitFor(t, "a logout", sessionGone(token))

	token = login(t, s, alice)
	exec(t, s, `UPDATE pgsession.sessions SET expires_at = now() + interval '1 second' WHERE id = $1`, store.HashToken(token))
	h.waitFor(t, "a shortened session", sessionGone(token))

	exec(t, s, `UPDATE pgsession.users SET is_admin = true WHERE id = $1`, bob.ID)
	h.waitFor(t, "new admin rights", userChanged(bob))
	_, err := s.ChangePassword(ctx, alice.ID, "a brand new password", "")
	require.NoError(t, err)
	h.waitFor(t, "a new password", userChanged(alice))
	require.NoError(t, s.DeleteUser(ctx, "bob"))
	h.waitFor(t, "a deleted user", userChanged(bob))

	// Quiet changes: a renewal, and the cleanup of expired sessions.
	carol := newUser(t, s, "carol")
	live := login(t, s, carol)
	for range 300 {
		login(t, s, carol)
	}
	h.reset()
	exec(t, s, `UPDATE pgsession.sessions SET expires_at = now() - interval '1 second' WHERE id <> $1`, store.HashToken(live))
	h.waitFor(t, "many shortened at once, as one purge", func(inv store.Invalidation) bool { return inv.All })
	h.reset()
	exec(t, s, `UPDATE pgsession.sessions SET last_seen_at = now() - interval '1 hour'`)
	_, err = s.TouchSession(ctx, store.HashToken(live), time.Minute)
	require.NoError(t, err)
	n, err := s.CleanupExpiredSessions(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(300), n)
	// A change after the quiet ones is heard, so anything they had sent would be too.
	marker := login(t, s, carol)
	require.NoError(t, s.DeleteSession(ctx, marker))
	h.waitFor(t, "the marker", sessionGone(marker))
	assert.Equal(t, []store.Invalidation{{Sessions: []store.SessionID{store.HashToken(marker)}}}, h.all(),
		"the renewal and the cleanup of 300 expired sessions announced nothing")
}

// Through a transaction pooler a LISTEN is run on one server connection and
// the pings on others, so they never come back: the listener says so.
func TestListeningThroughATransactionPoolerIsDetected(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s := newStoreAt(t, url, store.Options{})
	bouncer := pgtest.NewPgBouncer(t, url)
	h := &heard{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := &store.Listener{Store: s, ConnString: bouncer.URL(), PingInterval: 50 * time.Millisecond,
		Invalidate: func(store.Invalidation) {},
		Confirmed:  func(time.Time) { h.mu.Lock(); h.confirmed++; h.mu.Unlock() },
		Lost:       func(err error) { h.mu.Lock(); h.lost = append(h.lost, err); h.mu.Unlock() },
	}
	go l.Run(ctx)
	require.Eventually(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.lost) > 0 }, 20*time.Second, 10*time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	assert.True(t, errors.Is(h.lost[0], store.ErrNoEcho), "%v", h.lost[0])
	assert.Zero(t, h.confirmed)
}

// DetectPooler tells a direct connection from one through a transaction
// pooler, which decides whether statements can be prepared by name.
func TestDetectPooler(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	pooled, err := store.DetectPooler(ctx, url, time.Second)
	require.NoError(t, err)
	assert.False(t, pooled, "direct")
	pooled, err = store.DetectPooler(ctx, pgtest.NewPgBouncer(t, url).URL(), time.Second)
	require.NoError(t, err)
	assert.True(t, pooled, "through pgbouncer in transaction mode")
}
