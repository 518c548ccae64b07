package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
	"unique"

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
	idleTimeout                               time.Duration
}

// User is what a session carries of its user, interned: the sessions of
// one user share one copy.
type User struct {
	ID       store.UserID
	Username string
	IsAdmin  bool
	// SecondFactor says whether the user had a second factor when the row
	// was read; a change of factors changes the user's credentials, whose
	// NOTIFY drops the entry.
	SecondFactor bool
	// IDValue and UsernameValue are ID and Username boxed once for the
	// request's placeholders, so setting them allocates nothing.
	IDValue, UsernameValue any
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

// LastSeen is the use of the session the database last recorded.
func (s Session) LastSeen() time.Time { return time.Unix(0, s.lastSeen) }

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

// KeyOfID is the key of the session the database names id, if id is one.
func KeyOfID(id store.SessionID) (Key, bool) {
	var k Key
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

// FromStore converts a session row read at local time now.
func FromStore(sess *store.Session, now time.Time) Session {
	k, _ := KeyOfID(sess.ID)
	return Session{k, fromLive(sess.Live(), now)}
}

// FromLive converts what the gate's lookup of the session of key read at
// local time now.
func FromLive(key Key, l store.LiveSession, now time.Time) Session {
	return Session{key, fromLive(l, now)}
}

func fromLive(l store.LiveSession, now time.Time) *cachedSession {
	offset := now.Sub(l.CheckedAt)
	c := &cachedSession{
		user: unique.Make(User{ID: l.UserID, Username: l.Username, IsAdmin: l.IsAdmin,
			SecondFactor: l.SecondFactor, IDValue: string(l.UserID), UsernameValue: l.Username}),
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
