package pgsession

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

func testSession(token string, userID store.UserID, now time.Time) keptSession {
	return keptSession{keyOf(token), fromLive(store.LiveSession{UserID: userID, Username: "u",
		ExpiresAt: now.Add(time.Hour), LastSeenAt: now, CheckedAt: now}, now)}
}

// A session read from the database before an invalidation must not be
// kept after it, whichever of the two finishes first: else a revoked
// session would be served from memory until it expired.
func TestCacheNeverKeepsWhatWasInvalidatedDuringItsLookup(t *testing.T) {
	now := time.Now()
	c := newSessionCache(100, time.Minute, time.Second)
	s := testSession("token-a", "user-1", now)

	epoch := c.epoch.Load() // a lookup starts
	c.invalidate(store.Invalidation{Sessions: []store.SessionID{s.id()}})
	c.put(s, epoch) // and ends after the invalidation
	_, ok := c.get(s.key)
	assert.False(t, ok, "kept after an invalidation that came during its lookup")

	c.put(s, c.epoch.Load())
	_, ok = c.get(s.key)
	assert.True(t, ok)

	// Puts and invalidations racing: once an invalidation of the user has
	// returned, no put that began before it may leave an entry behind.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				e := c.epoch.Load()
				c.put(s, e)
			}
		})
	}
	wg.Go(func() {
		for range 1000 {
			c.invalidate(store.Invalidation{Users: []store.UserID{"user-1"}})
		}
	})
	wg.Wait()
	c.invalidate(store.Invalidation{Users: []store.UserID{"user-1"}})
	_, ok = c.get(s.key)
	assert.False(t, ok)
}

func TestCacheInvalidationsByUserAndAll(t *testing.T) {
	now := time.Now()
	c := newSessionCache(100, time.Minute, time.Second)
	a1, a2, b := testSession("a1", "alice", now), testSession("a2", "alice", now), testSession("b", "bob", now)
	for _, s := range []keptSession{a1, a2, b} {
		c.put(s, c.epoch.Load())
	}
	c.invalidate(store.Invalidation{Users: []store.UserID{"alice"}})
	for _, s := range []keptSession{a1, a2} {
		_, ok := c.get(s.key)
		assert.False(t, ok)
	}
	_, ok := c.get(b.key)
	assert.True(t, ok, "another user's session stays")
	c.invalidate(store.Invalidation{All: true})
	_, ok = c.get(b.key)
	assert.False(t, ok)
}

// Memory answers alone only while the listening connection has proved,
// lately, that it is caught up; during an outage it answers only for
// sessions confirmed within the grace, and only if the outage took the
// listening connection down with it.
func TestCacheTrustAndGrace(t *testing.T) {
	now := time.Now()
	c := newSessionCache(100, time.Minute, 2*time.Second)
	s := testSession("t", "alice", now)
	c.put(s, c.epoch.Load())
	assert.False(t, c.trusted(now), "never caught up")
	_, ok := c.graceFor(s.key, now)
	assert.False(t, ok, "no grace before the listening connection was ever caught up")

	c.confirmed(now)
	assert.True(t, c.trusted(now.Add(time.Second)))
	assert.False(t, c.trusted(now.Add(3*time.Second)), "a connection that stopped proving itself is not trusted")

	c.lost()
	assert.False(t, c.trusted(now))
	_, ok = c.graceFor(s.key, now.Add(30*time.Second))
	assert.True(t, ok, "confirmed 30 s ago, within the grace")
	_, ok = c.graceFor(s.key, now.Add(2*time.Minute))
	assert.False(t, ok, "confirmed longer ago than the grace")

	c.reached(time.Now()) // a look-up begun in the moment a shutdown ends both
	_, ok = c.graceFor(s.key, now.Add(time.Second))
	assert.True(t, ok, "the database went with the connection: it missed nothing")
	c.reached(time.Now().Add(3 * time.Second)) // the database answered well after the loss
	_, ok = c.graceFor(s.key, now.Add(time.Second))
	assert.False(t, ok, "changes may have been missed since: no grace")
}

func TestCacheOffKeepsNothing(t *testing.T) {
	c := newSessionCache(0, time.Minute, time.Second)
	s := testSession("t", "alice", time.Now())
	c.put(s, c.epoch.Load())
	_, ok := c.get(s.key)
	assert.False(t, ok)
	c.invalidate(store.Invalidation{All: true})
}

// Requests in progress end when their session is found ended, and are
// looked at again when their session would end, and every renewal interval.
func TestRequestsInProgressEndWithTheirSession(t *testing.T) {
	f := newInflight()
	now := time.Now()
	s := testSession("t", "alice", now)
	s.expires = now.Add(time.Minute).UnixNano()
	fl := f.start(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), s, false, 10*time.Second)
	r := &fl.request

	assert.Empty(t, f.due(now), "nothing to look at yet")
	f.invalidate(store.Invalidation{Users: []store.UserID{"bob"}})
	assert.Empty(t, f.due(now), "another user's change")
	f.invalidate(store.Invalidation{Users: []store.UserID{"alice"}})
	assert.Equal(t, []store.SessionID{s.id()}, f.due(now))
	f.settle(s.id(), s.cachedSession, now) // still live
	require.NoError(t, r.Context().Err())

	assert.Equal(t, []store.SessionID{s.id()}, f.due(now.Add(11*time.Second)), "a renewal interval without a look")
	f.settle(s.id(), s.cachedSession, now.Add(11*time.Second))
	assert.Empty(t, f.due(now.Add(12*time.Second)))
	assert.Equal(t, []store.SessionID{s.id()}, f.due(now.Add(2*time.Minute)), "its end came")
	f.settle(s.id(), nil, now.Add(2*time.Minute))
	assert.ErrorIs(t, r.Context().Err(), context.Canceled)

	assert.Equal(t, endedBeforeResponse, f.finish(fl))
	f.invalidate(store.Invalidation{All: true})
	assert.Empty(t, f.due(now), "a finished request is forgotten")
}
