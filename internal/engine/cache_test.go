package engine

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pgsession/caddy-pgsession/store"
)

func testSession(token string, userID store.UserID, now time.Time) Session {
	return Session{KeyOf(token), fromLive(store.LiveSession{UserID: userID, Username: "u",
		ExpiresAt: now.Add(time.Hour), LastSeenAt: now, CheckedAt: now}, now)}
}

// A session read from the database before an invalidation must not be
// kept after it, whichever of the two finishes first: else a revoked
// session would be served from memory until it expired.
func TestCacheNeverKeepsWhatWasInvalidatedDuringItsLookup(t *testing.T) {
	now := time.Now()
	c := NewCache(100, time.Minute, time.Second)
	s := testSession("token-a", "user-1", now)

	epoch := c.epoch.Load() // a lookup starts
	c.Invalidate(store.Invalidation{Sessions: []store.SessionID{s.id()}})
	c.Put(s, epoch) // and ends after the invalidation
	_, ok := c.Get(s.key)
	assert.False(t, ok, "kept after an invalidation that came during its lookup")

	c.Put(s, c.epoch.Load())
	_, ok = c.Get(s.key)
	assert.True(t, ok)

	// Puts and invalidations racing: once an invalidation of the user has
	// returned, no put that began before it may leave an entry behind.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				e := c.epoch.Load()
				c.Put(s, e)
			}
		})
	}
	wg.Go(func() {
		for range 1000 {
			c.Invalidate(store.Invalidation{Users: []store.UserID{"user-1"}})
		}
	})
	wg.Wait()
	c.Invalidate(store.Invalidation{Users: []store.UserID{"user-1"}})
	_, ok = c.Get(s.key)
	assert.False(t, ok)
}

func TestCacheInvalidationsByUserAndAll(t *testing.T) {
	now := time.Now()
	c := NewCache(100, time.Minute, time.Second)
	a1, a2, b := testSession("a1", "alice", now), testSession("a2", "alice", now), testSession("b", "bob", now)
	for _, s := range []Session{a1, a2, b} {
		c.Put(s, c.epoch.Load())
	}
	c.Invalidate(store.Invalidation{Users: []store.UserID{"alice"}})
	for _, s := range []Session{a1, a2} {
		_, ok := c.Get(s.key)
		assert.False(t, ok)
	}
	_, ok := c.Get(b.key)
	assert.True(t, ok, "another user's session stays")
	c.Invalidate(store.Invalidation{All: true})
	_, ok = c.Get(b.key)
	assert.False(t, ok)
}

// Memory answers alone only while the listening connection has proved,
// lately, that it is caught up; during an outage it answers only for
// sessions confirmed within the grace, and only if the outage took the
// listening connection down with it.
func TestCacheTrustAndGrace(t *testing.T) {
	now := time.Now()
	c := NewCache(100, time.Minute, 2*time.Second)
	s := testSession("t", "alice", now)
	c.Put(s, c.epoch.Load())
	assert.False(t, c.Trusted(now), "never caught up")
	_, ok := c.GraceFor(s.key, now)
	assert.False(t, ok, "no grace before the listening connection was ever caught up")

	c.Confirmed(now)
	assert.True(t, c.Trusted(now.Add(time.Second)))
	assert.False(t, c.Trusted(now.Add(3*time.Second)), "a connection that stopped proving itself is not trusted")

	c.Lost()
	assert.False(t, c.Trusted(now))
	_, ok = c.GraceFor(s.key, now.Add(30*time.Second))
	assert.True(t, ok, "confirmed 30 s ago, within the grace")
	_, ok = c.GraceFor(s.key, now.Add(2*time.Minute))
	assert.False(t, ok, "confirmed longer ago than the grace")

	c.Reached(time.Now()) // a look-up begun in the moment a shutdown ends both
	_, ok = c.GraceFor(s.key, now.Add(time.Second))
	assert.True(t, ok, "the database went with the connection: it missed nothing")
	c.Reached(time.Now().Add(3 * time.Second)) // the database answered well after the loss
	_, ok = c.GraceFor(s.key, now.Add(time.Second))
	assert.False(t, ok, "changes may have been missed since: no grace")
}

func TestCacheOffKeepsNothing(t *testing.T) {
	c := NewCache(0, time.Minute, time.Second)
	s := testSession("t", "alice", time.Now())
	c.Put(s, c.epoch.Load())
	_, ok := c.Get(s.key)
	assert.False(t, ok)
	c.Invalidate(store.Invalidation{All: true})
}
