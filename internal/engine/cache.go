package engine

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/pgsession/caddy-pgsession/store"
)

// The gate keeps the sessions it has checked in memory, so a request with a
// live session costs no round trip to PostgreSQL. Memory is trusted only
// while it is known to be up to date: the database's triggers announce every
// session that ends or is shortened and every user who changes (see
// store.Listener), and the listening connection proves it is caught up by
// receiving its own pings. While it is not, every request is checked in the
// database, except during an outage, when offline_grace applies.

// Cache is the memory of checked sessions, with what decides whether
// it may be trusted.
type Cache struct {
	entries *otter.Cache[Key, *cachedSession] // nil when cache_size is 0

	// mu orders stores against invalidations: a session read from the
	// database before an invalidation must not be stored after it.
	mu    sync.Mutex
	epoch atomic.Uint64

	// caughtUp is when the last ping that came back was sent (Unix
	// nanoseconds): every change committed before it has been applied. It
	// is 0 while the listening connection is down.
	caughtUp    atomic.Int64
	trustWindow time.Duration

	// reachedSinceLoss is set when the database answered a look-up that
	// began well after the listening connection was lost (more than the
	// trust window later): the database then outlived the connection, and
	// changes since may have been missed, so memory must not stand in for
	// it in an outage. A database that goes away ends the listener and the
	// pool's connections a few milliseconds apart, and look-ups in that
	// moment do not count; lostAt is when the connection was lost (Unix
	// nanoseconds).
	reachedSinceLoss atomic.Bool
	lostAt           atomic.Int64
	grace            time.Duration
}

// NewCache makes a memory of up to size sessions (none when size is 0),
// trusted for trustWindow after the listening connection last proved it
// caught up, whose sessions serve for grace after their last confirmation
// while the database cannot be asked.
func NewCache(size int, grace, trustWindow time.Duration) *Cache {
	c := &Cache{grace: grace, trustWindow: trustWindow}
	c.reachedSinceLoss.Store(true) // nothing was ever caught up
	if size > 0 {
		c.entries = otter.Must(&otter.Options[Key, *cachedSession]{MaximumSize: size})
	}
	return c
}

// Size is how many sessions memory may hold.
func (c *Cache) Size() int {
	if c.entries == nil {
		return 0
	}
	return int(c.entries.GetMaximum())
}

// Trusted reports whether memory is up to date enough to answer alone.
func (c *Cache) Trusted(now time.Time) bool {
	t := c.caughtUp.Load()
	return t != 0 && now.UnixNano()-t <= int64(c.trustWindow)
}

// Get returns the kept session of key, if any.
func (c *Cache) Get(key Key) (Session, bool) {
	if c.entries == nil {
		return Session{}, false
	}
	s, ok := c.entries.GetIfPresent(key)
	return Session{key, s}, ok
}

// Epoch is the count of invalidations, to read before a look-up whose
// answer Put keeps.
func (c *Cache) Epoch() uint64 { return c.epoch.Load() }

// Put keeps s, unless an invalidation came since epoch was read.
func (c *Cache) Put(s Session, epoch uint64) {
	if c.entries == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch.Load() == epoch {
		c.entries.Set(s.key, s.cachedSession)
	}
}

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

// Stop ends the cache's background work.
func (c *Cache) Stop() {
	if c.entries != nil {
		c.entries.StopAllGoroutines()
	}
}

// Sessions is about how many sessions memory holds.
func (c *Cache) Sessions() int {
	if c.entries == nil {
		return 0
	}
	return c.entries.EstimatedSize()
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
	if touched && next.idleTimeout > 0 {
		next.idleExpires = now.Add(next.idleTimeout).UnixNano()
	}
	c.Put(Session{s.key, &next}, epoch)
}
