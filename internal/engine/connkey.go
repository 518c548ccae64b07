package engine

import (
	"context"
	"crypto/subtle"
	"net"
	"strings"
	"sync/atomic"
)

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
