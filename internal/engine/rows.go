package engine

import (
	"encoding/hex"
	"math"
	"strings"
	"time"
	"unique"

	"github.com/pgsession/caddy-pgsession/store"
)

// Sessions made from what the database read: a session memory keeps is
// made once, when a request misses it, and is never changed after.

// KeyOfID is the key of the session the database names id, if id is one.
func KeyOfID(id store.SessionID) (Key, bool) {
	var k Key
	n, err := hex.Decode(k[:], []byte(id))
	return k, err == nil && n == len(k)
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
	groups := strings.Join(l.Groups, ",")
	name, err := store.PrepareUsername(l.Username)
	if err != nil {
		// A name stored before the profile tightened still compares as
		// its lowercase.
		name.Key = strings.ToLower(l.Username)
	}
	c := &cachedSession{
		user: unique.Make(User{ID: l.UserID, Username: l.Username, Key: name.Key, IsAdmin: l.IsAdmin,
			SecondFactor: l.SecondFactor, Groups: groups,
			IDValue: string(l.UserID), UsernameValue: l.Username, GroupsValue: groups}),
		expires:     l.ExpiresAt.Add(offset).UnixNano(),
		idleSeconds: int32(min(l.IdleTimeout/time.Second, math.MaxInt32)),
		method:      methodOf(l.Method),
		lastSeen:    l.LastSeenAt.Add(offset).UnixNano(),
		confirmed:   now.UnixNano(),
		scope:       l.Scope,
	}
	if !l.IdleExpiresAt.IsZero() {
		c.idleExpires = l.IdleExpiresAt.Add(offset).UnixNano()
	}
	return c
}
