package pgsession

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"
	"unique"

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

// DefaultCacheSize is how many sessions a server keeps in memory unless
// cache_size says otherwise: a few megabytes.
const DefaultCacheSize = 10_000

// cachedSession is what the gate needs of a live session. It is never
// changed once made, so readers need no lock; a renewal stores a new one.
// It is kept small, as a busy server holds many: times are Unix nanoseconds,
// the key is memory's own (keptSession pairs the two where both are
// needed), and what belongs to the user is shared by all of the user's
// sessions.
// Times are on this server's clock: the database's, moved by the offset
// measured when the row was read, so a clock skew between the two does not
// stretch a session.
type cachedSession struct {
	user unique.Handle[sessionUser]
	// expires and idleExpires (0 without an idle timeout) are the
	// session's ends; lastSeen is the use the database last recorded, and
	// confirmed when the database last said the session was live.
	expires, idleExpires, lastSeen, confirmed int64
	idleTimeout                               time.Duration
}

// sessionUser is what a session carries of its user, interned: the
// sessions of one user share one copy.
type sessionUser struct {
	id       store.UserID
	username string
	isAdmin  bool
	// secondFactor says whether the user had a second factor when the row
	// was read; a change of factors changes the user's credentials, whose
	// NOTIFY drops the entry.
	secondFactor bool
	// idValue and nameValue are id and username boxed once for the
	// request's placeholders, so setting them allocates nothing.
	idValue, nameValue any
}

func (s *cachedSession) userID() store.UserID { return s.user.Value().id }

// keptSession is a session memory keeps, or may keep, with its key.
type keptSession struct {
	key sessionKey
	*cachedSession
}

// id is the session's id as the database names it.
func (s keptSession) id() store.SessionID { return store.SessionID(hex.EncodeToString(s.key[:])) }

// sessionKey is the SHA-256 of a token: the session's id, as bytes.
type sessionKey [sha256.Size]byte

// keyOf hashes a token; a token of the usual length is copied to the stack
// first, since converting it to a slice would allocate on every request.
func keyOf(token string) sessionKey {
	var buf [64]byte
	if len(token) > len(buf) {
		return sha256.Sum256([]byte(token))
	}
	n := copy(buf[:], token)
	return sha256.Sum256(buf[:n])
}

func keyOfID(id store.SessionID) (sessionKey, bool) {
	var k sessionKey
	n, err := hex.Decode(k[:], []byte(id))
	return k, err == nil && n == len(k)
}

// live reports whether the session has not ended by now, as far as this
// server knows: an idle end another server pushed back is not known here,
// which sends the request to the database rather than refusing it.
func (s *cachedSession) live(now time.Time) bool {
	t := now.UnixNano()
	return t < s.expires && (s.idleExpires == 0 || t < s.idleExpires)
}

// ends is when the session ends unless renewed.
func (s *cachedSession) ends() time.Time {
	if s.idleExpires != 0 && s.idleExpires < s.expires {
		return time.Unix(0, s.idleExpires)
	}
	return time.Unix(0, s.expires)
}

// fromStore converts a session row read at local time now.
func fromStore(sess *store.Session, now time.Time) keptSession {
	k, _ := keyOfID(sess.ID)
	return keptSession{k, fromLive(sess.Live(), now)}
}

// fromLive converts what the gate's lookup read at local time now.
func fromLive(l store.LiveSession, now time.Time) *cachedSession {
	offset := now.Sub(l.CheckedAt)
	c := &cachedSession{
		user: unique.Make(sessionUser{id: l.UserID, username: l.Username, isAdmin: l.IsAdmin,
			secondFactor: l.SecondFactor, idValue: string(l.UserID), nameValue: l.Username}),
		expires:     l.ExpiresAt.Add(offset).UnixNano(),
		idleTimeout: l.IdleTimeout,
		lastSeen:    l.LastSeenAt.Add(offset).UnixNano(),
		confirmed:   now.UnixNano(),
	}
	if !l.IdleExpiresAt.IsZero() {
		c.idleExpires = l.IdleExpiresAt.Add(offset).UnixNano()
	}
	return c
}

// sessionCache is the memory of checked sessions, with what decides whether
// it may be trusted.
type sessionCache struct {
	entries *otter.Cache[sessionKey, *cachedSession] // nil when cache_size is 0

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

func newSessionCache(size int, grace, trustWindow time.Duration) *sessionCache {
	c := &sessionCache{grace: grace, trustWindow: trustWindow}
	c.reachedSinceLoss.Store(true) // nothing was ever caught up
	if size > 0 {
		c.entries = otter.Must(&otter.Options[sessionKey, *cachedSession]{MaximumSize: size})
	}
	return c
}

// size is how many sessions memory may hold.
func (c *sessionCache) size() int {
	if c.entries == nil {
		return 0
	}
	return int(c.entries.GetMaximum())
}

// trusted reports whether memory is up to date enough to answer alone.
func (c *sessionCache) trusted(now time.Time) bool {
	t := c.caughtUp.Load()
	return t != 0 && now.UnixNano()-t <= int64(c.trustWindow)
}

// get returns the kept session of key, if any.
func (c *sessionCache) get(key sessionKey) (*cachedSession, bool) {
	if c.entries == nil {
		return nil, false
	}
	return c.entries.GetIfPresent(key)
}

// put keeps s, unless an invalidation came since epoch was read.
func (c *sessionCache) put(s keptSession, epoch uint64) {
	if c.entries == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch.Load() == epoch {
		c.entries.Set(s.key, s.cachedSession)
	}
}

// forget drops the session of key, which the database no longer has.
func (c *sessionCache) forget(key sessionKey) {
	if c.entries == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	c.entries.Invalidate(key)
}

// invalidate applies what the database announced.
func (c *sessionCache) invalidate(inv store.Invalidation) {
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
		if k, ok := keyOfID(id); ok {
			c.entries.Invalidate(k)
		}
	}
	if len(inv.Users) > 0 {
		users := make(map[store.UserID]bool, len(inv.Users))
		for _, u := range inv.Users {
			users[u] = true
		}
		for k, s := range c.entries.All() {
			if users[s.user.Value().id] {
				c.entries.Invalidate(k)
			}
		}
	}
}

// confirmed records that every change committed before sent has been applied.
func (c *sessionCache) confirmed(sent time.Time) {
	c.caughtUp.Store(sent.UnixNano())
	c.reachedSinceLoss.Store(false)
}

// lost records that the listening connection is gone.
func (c *sessionCache) lost() {
	if c.caughtUp.Swap(0) != 0 {
		c.lostAt.Store(time.Now().UnixNano())
	}
}

// reached records that the database answered a look-up begun at started.
func (c *sessionCache) reached(started time.Time) {
	if c.caughtUp.Load() != 0 || c.reachedSinceLoss.Load() {
		return
	}
	if lost := c.lostAt.Load(); lost == 0 || started.UnixNano()-lost > int64(c.trustWindow) {
		c.reachedSinceLoss.Store(true)
	}
}

// graceFor returns the kept session of key if it may be served while the
// database cannot be asked: confirmed within offline_grace, still live, and
// kept across an outage that took the listening connection down with it, so
// no revocation can have been missed.
func (c *sessionCache) graceFor(key sessionKey, now time.Time) (*cachedSession, bool) {
	if c.grace <= 0 || c.reachedSinceLoss.Load() {
		return nil, false
	}
	s, ok := c.get(key)
	if !ok || !s.live(now) || now.UnixNano()-s.confirmed > int64(c.grace) {
		return nil, false
	}
	return s, true
}

// stop ends the cache's background work.
func (c *sessionCache) stop() {
	if c.entries != nil {
		c.entries.StopAllGoroutines()
	}
}

// session returns the live session of token: from memory while memory is
// known to be up to date, else from the database, and from memory again
// during an outage for a session confirmed within offline_grace. A missing
// or expired session is (nil, nil); an error means the database could not
// answer (and was counted as such, unless the client went away). Each
// look-up of a well-formed token that got an answer counts once in
// cache_lookups_total: a hit, a miss, or offline_grace. now is when the
// request came.
func (a *App) session(ctx context.Context, token string, now time.Time) (keptSession, error) {
	if len(token) != store.TokenLength {
		return keptSession{}, nil
	}
	// Memory holds only sessions of well-formed tokens, so a hit needs no
	// check of the token's shape; a miss does, before any query.
	key := keyOfRequest(ctx, token)
	if a.cache.trusted(now) {
		if s, ok := a.cache.get(key); ok && s.live(now) {
			a.metrics.cache[cacheHit].Inc()
			return keptSession{key, s}, nil
		}
	}
	if !store.ValidToken(token) {
		return keptSession{}, nil
	}
	if a.health.recentlyFailed(now) {
		if s, ok := a.cache.graceFor(key, now); ok {
			a.metrics.cache[cacheOfflineGrace].Inc()
			a.health.servedFromMemory()
			return keptSession{key, s}, nil
		}
	}
	epoch := a.cache.epoch.Load()
	started := now
	row, found, err := a.lookups.look(ctx, key, func(ctx context.Context) (store.LiveSession, bool, error) {
		lookCtx, cancel := context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
		return a.store.CheckSession(lookCtx, store.HashToken(token))
	})
	now = time.Now()
	if err != nil {
		if clientGone(ctx, err) {
			return keptSession{}, err
		}
		if s, ok := a.cache.graceFor(key, now); ok {
			a.metrics.cache[cacheOfflineGrace].Inc()
			a.health.failed(err, true)
			return keptSession{key, s}, nil
		}
		// The 503 this becomes is recorded as one refusal where it is written (Handler.answer).
		a.metrics.cache[cacheMiss].Inc()
		return keptSession{}, err
	}
	a.health.ok()
	a.metrics.cache[cacheMiss].Inc()
	a.cache.reached(started)
	if !found {
		a.cache.forget(key)
		return keptSession{}, nil
	}
	s := keptSession{key, fromLive(row, now)}
	a.cache.put(s, epoch)
	return s, nil
}
