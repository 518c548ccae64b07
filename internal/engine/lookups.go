package engine

import (
	"context"
	"errors"
	"sync"

	"github.com/pgsession/caddy-pgsession/store"
)

// A browser asks for a page and its assets at once, with one cookie: after
// a reload, on a server that has not seen the session yet, or with memory
// off, each of those requests would look the session up on its own. Instead
// the requests of one session that reach the database together share
// lookups: a request waits for the next lookup to begin, never joins one
// already under way, so every answer still comes from a query that began
// after the request arrived, and a session revoked before a request came is
// never served to it. At most one lookup of a session runs at a time, with
// at most one more waiting.

// lookupQuery asks the database for one session.
type lookupQuery func(context.Context) (store.LiveSession, bool, error)

// Lookups are the lookups under way, by session.
type Lookups struct {
	mu sync.Mutex
	// running holds a key while its lookup runs; the value is the lookup
	// that waits to begin after it, nil while none does.
	running map[Key]*waitingLookup
}

// waitingLookup is a lookup that begins when the one before it is done,
// run by the request that queued it for every request that joined it.
type waitingLookup struct {
	ready chan struct{} // closed when the lookup before is done
	done  chan struct{} // closed when the answer is in
	row   store.LiveSession
	found bool
	err   error
}

// NewLookups makes a record of no lookups under way.
func NewLookups() *Lookups {
	return &Lookups{running: make(map[Key]*waitingLookup)}
}

// Look answers with query, or with a lookup of the same session that
// begins after this call. A request that shares another's lookup stops
// waiting when its own ctx ends.
func (l *Lookups) Look(ctx context.Context, key Key, query lookupQuery) (store.LiveSession, bool, error) {
	if l == nil {
		return query(ctx)
	}
	l.mu.Lock()
	next, busy := l.running[key]
	if !busy {
		// The common case: nothing of this session under way, no allocation.
		l.running[key] = nil
		l.mu.Unlock()
		row, found, err := query(ctx)
		l.finished(key)
		return row, found, err
	}
	queued := next == nil
	if queued {
		next = &waitingLookup{ready: make(chan struct{}), done: make(chan struct{})}
		l.running[key] = next
	}
	l.mu.Unlock()

	if queued {
		// Others wait on this lookup, so it runs to the end even if this
		// request's client leaves; the timeout query sets still bounds it.
		<-next.ready
		next.row, next.found, next.err = query(context.WithoutCancel(ctx))
		close(next.done)
		l.finished(key)
		return next.row, next.found, next.err
	}
	select {
	case <-next.done:
		return next.row, next.found, next.err
	case <-ctx.Done():
		return store.LiveSession{}, false, ctx.Err()
	}
}

// finished records that the lookup of key that was running is done, and
// lets the one waiting after it, if any, begin.
func (l *Lookups) finished(key Key) {
	l.mu.Lock()
	next := l.running[key]
	if next == nil {
		delete(l.running, key)
	} else {
		l.running[key] = nil // the waiting lookup is the running one now
	}
	l.mu.Unlock()
	if next != nil {
		close(next.ready)
	}
}

// ClientGone reports whether err only says the client went away: that is
// no failure of the store, and deserves neither a 503 nor a log line.
func ClientGone(ctx context.Context, err error) bool {
	return ctx.Err() != nil && errors.Is(err, context.Canceled)
}
