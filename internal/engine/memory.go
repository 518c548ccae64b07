package engine

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"github.com/maypok86/otter/v2"
	"github.com/pgsession/caddy-pgsession/store"
)

// A session as memory keeps it, and the key memory finds it by.

// cachedSession is what the gate needs of a live session. It is never
// changed once made, so readers need no lock; a renewal stores a new one.
// It is kept small, as a busy server holds many: times are Unix nanoseconds,
// the key is memory's own (Session pairs the two where both are needed),
// and what belongs to the user is shared by all of the user's sessions.
// Times are on this server's clock: the database's, moved by the offset
// measured when the row was read, so a clock skew between the two does not
// stretch a session.
type cachedSession struct {
	user unique.Handle[User]
	// expires and idleExpires (0 without an idle timeout) are the
	// session's ends; lastSeen is the use the database last recorded, and
	// confirmed when the database last said the session was live.
	expires, idleExpires, lastSeen, confirmed int64
	// idleSeconds is the idle timeout in whole seconds, as the database
	// keeps it, and method how the session was signed in: an int32 and a
	// byte fill the room an int64 took, so the session stays 56 bytes with
	// an API token's scope.
	idleSeconds int32
	method      method
	// scope is an API token's, nil for a session; it is shared, never changed.
	scope *store.TokenScope
}

// idleTimeout is how long the session may go unused; 0 for no limit.
func (s *cachedSession) idleTimeout() time.Duration {
	return time.Duration(s.idleSeconds) * time.Second
}

// User is what a session carries of its user, interned: the sessions of
// one user share one copy.
type User struct {
	ID       store.UserID
	Username string
	// Key is the username as names are compared (store.Username.Key),
	// which a rule naming users matches.
	Key     string
	IsAdmin bool
	// SecondFactor says whether the user had a second factor when the row
	// was read; a change of factors changes the user's credentials, whose
	// NOTIFY drops the entry.
	SecondFactor bool
	// Groups are the user's groups, sorted and joined with commas, as
	// X-Auth-Groups carries them: a string keeps User comparable, so it
	// can be interned, and a rule finds a group in it without allocating.
	Groups string
	// IDValue, UsernameValue and GroupsValue are ID, Username and Groups
	// boxed once for the request's placeholders, so setting them
	// allocates nothing.
	IDValue, UsernameValue, GroupsValue any
}

func (s *cachedSession) userID() store.UserID { return s.user.Value().ID }

// Session is a session memory keeps, or may keep, with its key. The zero
// Session is no session.
type Session struct {
	key Key
	*cachedSession
}

// IsZero reports whether s is no session.
func (s Session) IsZero() bool { return s.cachedSession == nil }

// Key is the key memory keeps the session under.
func (s Session) Key() Key { return s.key }

// ID is the session's id as the database names it.
func (s Session) ID() store.SessionID { return s.id() }

func (s Session) id() store.SessionID { return store.SessionID(hex.EncodeToString(s.key[:])) }

// User is the session's user.
func (s Session) User() User { return s.user.Value() }

// Method is how the session was signed in, or stepped up to since: one
// of the store's Method names, or "" for an API token.
func (s Session) Method() string { return methodNames[s.method] }

// MethodValue is Method boxed, for a placeholder, without allocating.
func (s Session) MethodValue() any { return methodValues[s.method] }

// SecondFactorDone reports whether the session was signed in, or stepped
// up, with more than a password: a path that needs a second factor lets
// it through.
func (s Session) SecondFactorDone() bool { return methodSecondFactor[s.method] }

// LastSeen is the use of the session the database last recorded.
func (s Session) LastSeen() time.Time { return time.Unix(0, s.lastSeen) }

// APIToken reports whether the session is an API token's rather than a
// cookie's.
func (s Session) APIToken() bool { return s.scope != nil }

// TokenPaths are the path patterns an API token is limited to; none for
// a session or an unlimited token.
func (s Session) TokenPaths() []string {
	if s.scope == nil {
		return nil
	}
	return s.scope.Paths
}

// Live reports whether the session has not ended by now, as far as this
// server knows.
func (s Session) Live(now time.Time) bool { return s.live(now) }

// Key is the SHA-256 of a token: the session's id, as bytes.
type Key [sha256.Size]byte

// KeyOf hashes a token; a token of the usual length is copied to the stack
// first, since converting it to a slice would allocate on every request.
func KeyOf(token string) Key {
	var buf [64]byte
	if len(token) > len(buf) {
		return sha256.Sum256([]byte(token))
	}
	n := copy(buf[:], token)
	return sha256.Sum256(buf[:n])
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

// Memory keys sessions by the SHA-256 of their token, as the database does,
// so that an announcement naming a session finds it. Hashing is the largest
// part of what the gate does for a session in memory, and a browser sends
// the same cookie on every request of a connection: each connection keeps
// the key of the last token it carried, and a request with the same token
// skips the hash. The token kept is one the connection's own read buffer
// held already, and it goes with the connection.

// connKeyCtxKey is the context key of a connection's lastKey.
type connKeyCtxKey struct{}

// lastKey is the last token a connection carried and its key.
type lastKey struct {
	last atomic.Pointer[tokenKey]
}

type tokenKey struct {
	token string
	key   Key
}

// WithLastKey gives a new connection's context a lastKey, unless another
// handler's registration already did: it is an http.Server's ConnContext.
func WithLastKey(ctx context.Context, _ net.Conn) context.Context {
	if ctx.Value(connKeyCtxKey{}) != nil {
		return ctx
	}
	return context.WithValue(ctx, connKeyCtxKey{}, new(lastKey))
}

// KeyOfRequest is KeyOf(token), from the connection's last key when it
// carried the same token before. Requests of one connection may run at
// once (HTTP/2), so the last key is swapped whole; a proxy's connection
// carrying many users' tokens only ever misses. The comparison takes the
// same time wherever the tokens differ, since a connection may be shared.
func KeyOfRequest(ctx context.Context, token string) Key {
	lk, _ := ctx.Value(connKeyCtxKey{}).(*lastKey)
	if lk == nil {
		return KeyOf(token)
	}
	if last := lk.last.Load(); last != nil && subtle.ConstantTimeCompare([]byte(last.token), []byte(token)) == 1 {
		return last.key
	}
	key := KeyOf(token)
	// A copy, so that the connection keeps the token and not the whole
	// Cookie header it came in.
	lk.last.Store(&tokenKey{token: strings.Clone(token), key: key})
	return key
}

// The look-up every gated request makes sits here, beside the memory it
// reads, so that following one request enters as few files as it can.

// Counter counts look-ups: a Prometheus counter, which the engine need not
// import to be handed one.
type Counter interface{ Inc() }

// Sessions finds the live session of a token: from memory while memory is
// known to be up to date, else from the database (one query however many
// requests of the token wait), and from memory again during an outage for a
// session confirmed within offline_grace.
type Sessions struct {
	Cache   *Cache
	Lookups *Lookups
	Health  *Health
	// Check asks the database for the live session whose id is the hash
	// of a token; Timeout bounds it, so a pooler whose database is gone
	// gives a prompt 503 instead of a wait of minutes.
	Check   func(ctx context.Context, id store.SessionID) (store.LiveSession, bool, error)
	Timeout time.Duration
	// Length and Valid are the shape of the tokens looked up: a session
	// cookie's (store.TokenLength, store.ValidToken) or an API token's.
	Length int
	Valid  func(string) bool
	// Hit, Miss and Grace count each look-up of a well-formed token that
	// got an answer once: from memory, from the database (answered or
	// failed), or from memory while the database failed.
	Hit, Miss, Grace Counter
}

// Remembered returns the live session of token from memory, while memory
// is up to date, counting the hit. Memory holds only sessions of
// well-formed tokens, so a hit needs no check of the token's shape.
func (ss *Sessions) Remembered(ctx context.Context, token string, now time.Time) (Session, bool) {
	if len(token) != ss.Length || !ss.Cache.Trusted(now) {
		return Session{}, false
	}
	if s, ok := ss.Cache.Get(KeyOfRequest(ctx, token)); ok && s.Live(now) {
		ss.Hit.Inc()
		return s, true
	}
	return Session{}, false
}

// Look returns the live session of token. A missing or expired session is
// (zero, nil); an error means the database could not answer (and was
// counted as such, unless the client went away). now is when the request
// came.
func (ss *Sessions) Look(ctx context.Context, token string, now time.Time) (Session, error) {
	if s, ok := ss.Remembered(ctx, token, now); ok {
		return s, nil
	}
	if len(token) != ss.Length || !ss.Valid(token) {
		return Session{}, nil
	}
	key := KeyOfRequest(ctx, token)
	if ss.Health.RecentlyFailed(now) {
		if s, ok := ss.Cache.GraceFor(key, now); ok {
			ss.Grace.Inc()
			ss.Health.ServedFromMemory()
			return s, nil
		}
	}
	epoch := ss.Cache.Epoch()
	started := now
	row, found, err := ss.Lookups.Look(ctx, key, func(ctx context.Context) (store.LiveSession, bool, error) {
		lookCtx, cancel := context.WithTimeout(ctx, ss.Timeout)
		defer cancel()
		return ss.Check(lookCtx, store.HashToken(token))
	})
	now = time.Now()
	if err != nil {
		if ClientGone(ctx, err) {
			return Session{}, err
		}
		if s, ok := ss.Cache.GraceFor(key, now); ok {
			ss.Grace.Inc()
			ss.Health.Failed(err, true)
			return s, nil
		}
		// The 503 this becomes is recorded as one refusal where it is written.
		ss.Miss.Inc()
		return Session{}, err
	}
	ss.Health.OK()
	ss.Miss.Inc()
	ss.Cache.Reached(started)
	if !found {
		ss.Cache.Forget(key)
		return Session{}, nil
	}
	s := FromLive(key, row, now)
	ss.Cache.Put(s, epoch)
	return s, nil
}
