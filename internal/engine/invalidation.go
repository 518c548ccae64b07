package engine

import (
	"time"

	"github.com/pgsession/caddy-pgsession/store"
)

// What memory learns besides the answers of look-ups: the sessions the
// database announced changed, whether the listening connection is caught
// up, renewals; and what it may still answer for during an outage. None of
// it runs for a request memory answers, which only reads.

// Forget drops the session of key, which the database no longer has.
func (c *Cache) Forget(key Key) {
	if c.entries == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	c.entries.Invalidate(key)
}

// Invalidate applies what the database announced.
func (c *Cache) Invalidate(inv store.Invalidation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	if c.entries == nil {
		return
	}
	if inv.All {
		c.entries.InvalidateAll()
		return
	}
	for _, id := range inv.Sessions {
		if k, ok := KeyOfID(id); ok {
			c.entries.Invalidate(k)
		}
	}
	if len(inv.Users) > 0 {
		users := make(map[store.UserID]bool, len(inv.Users))
		for _, u := range inv.Users {
			users[u] = true
		}
		for k, s := range c.entries.All() {
			if users[s.user.Value().ID] {
				c.entries.Invalidate(k)
			}
		}
	}
}

// Confirmed records that every change committed before sent has been applied.
func (c *Cache) Confirmed(sent time.Time) {
	c.caughtUp.Store(sent.UnixNano())
	c.reachedSinceLoss.Store(false)
}

// Lost records that the listening connection is gone.
func (c *Cache) Lost() {
	if c.caughtUp.Swap(0) != 0 {
		c.lostAt.Store(time.Now().UnixNano())
	}
}

// Reached records that the database answered a look-up begun at started.
func (c *Cache) Reached(started time.Time) {
	if c.caughtUp.Load() != 0 || c.reachedSinceLoss.Load() {
		return
	}
	if lost := c.lostAt.Load(); lost == 0 || started.UnixNano()-lost > int64(c.trustWindow) {
		c.reachedSinceLoss.Store(true)
	}
}

// GraceFor returns the kept session of key if it may be served while the
// database cannot be asked: confirmed within offline_grace, still live, and
// kept across an outage that took the listening connection down with it, so
// no revocation can have been missed.
func (c *Cache) GraceFor(key Key, now time.Time) (Session, bool) {
	if c.grace <= 0 || c.reachedSinceLoss.Load() {
		return Session{}, false
	}
	s, ok := c.Get(key)
	if !ok || !s.live(now) || now.UnixNano()-s.confirmed > int64(c.grace) {
		return Session{}, false
	}
	return s, true
}

// Renewed keeps s with its last use at now, after a renewal that found it
// live, so this server does not write it again within the renewal interval;
// touched says this server's write changed the row, which pushed its idle
// end back. It keeps nothing if memory heard of a change to the session
// since epoch was read, before the write, or holds a newer copy: the change
// wins.
func (c *Cache) Renewed(s Session, now time.Time, touched bool, epoch uint64) {
	if kept, ok := c.Get(s.key); !ok || kept.cachedSession != s.cachedSession {
		return
	}
	next := *s.cachedSession
	next.lastSeen = now.UnixNano()
	if touched && next.idleSeconds > 0 {
		next.idleExpires = now.Add(next.idleTimeout()).UnixNano()
	}
	c.Put(Session{s.key, &next}, epoch)
}
