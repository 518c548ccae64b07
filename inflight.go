package pgsession

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/pgsession/caddy-pgsession/store"
)

// Long-lived responses (server-sent events, WebSockets, long polls) end
// with their session: every request the gate lets through is registered
// here until it finishes, and when the database announces that its session
// ended, or its session's end comes, the request's context is cancelled,
// which ends the response.

// errSessionEnded is the cause of a request's cancellation.
var errSessionEnded = errors.New("the session ended")

// flight is one request in progress.
type flight struct {
	request   *http.Request // the request passed on, whose context ends with the session
	sessionID store.SessionID
	userID    store.UserID
	cancel    context.CancelCauseFunc
	ends      time.Time // when to check the session again, unless renewed
}

// inflight tracks the requests in progress. Announcements are rare next to
// requests, so finding a session's requests walks them all rather than
// keeping an index that every request would pay for.
type inflight struct {
	mu      sync.Mutex
	flights map[*flight]struct{}
	recheck map[store.SessionID]bool // sessions to look up again
	wake    chan struct{}
}

func newInflight() *inflight {
	return &inflight{
		flights: make(map[*flight]struct{}),
		recheck: make(map[store.SessionID]bool),
		wake:    make(chan struct{}, 1),
	}
}

// start registers r under its session; the flight's request is the one to
// pass on, and finish must be called when it is done.
func (f *inflight) start(r *http.Request, sess *cachedSession) *flight {
	ctx, cancel := context.WithCancelCause(r.Context())
	fl := &flight{request: r.WithContext(ctx), sessionID: sess.id(), userID: sess.userID(), cancel: cancel, ends: sess.ends()}
	f.mu.Lock()
	f.flights[fl] = struct{}{}
	f.mu.Unlock()
	return fl
}

// finish unregisters a request that is done.
func (f *inflight) finish(fl *flight) {
	f.mu.Lock()
	delete(f.flights, fl)
	f.mu.Unlock()
	fl.cancel(nil)
}

// invalidate marks the requests whose sessions the announcement names for a
// fresh look-up: a shortened session may still be live.
func (f *inflight) invalidate(inv store.Invalidation) {
	var sessions map[store.SessionID]bool
	var users map[store.UserID]bool
	if len(inv.Sessions) > 0 {
		sessions = make(map[store.SessionID]bool, len(inv.Sessions))
		for _, id := range inv.Sessions {
			sessions[id] = true
		}
	}
	if len(inv.Users) > 0 {
		users = make(map[store.UserID]bool, len(inv.Users))
		for _, u := range inv.Users {
			users[u] = true
		}
	}
	f.mu.Lock()
	for fl := range f.flights {
		if inv.All || sessions[fl.sessionID] || users[fl.userID] {
			f.recheck[fl.sessionID] = true
		}
	}
	n := len(f.recheck)
	f.mu.Unlock()
	if n > 0 {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// due takes the sessions to look up again: those marked, and those whose
// end has come by now.
func (f *inflight) due(now time.Time) []store.SessionID {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fl := range f.flights {
		if !now.Before(fl.ends) {
			f.recheck[fl.sessionID] = true
		}
	}
	ids := make([]store.SessionID, 0, len(f.recheck))
	for id := range f.recheck {
		ids = append(ids, id)
	}
	clear(f.recheck)
	return ids
}

// settle applies a look-up: an ended session's requests are cancelled, a
// live one's are checked again when it would end next.
func (f *inflight) settle(id store.SessionID, sess *cachedSession) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fl := range f.flights {
		if fl.sessionID != id {
			continue
		}
		if sess == nil {
			fl.cancel(errSessionEnded)
		} else {
			fl.ends = sess.ends()
		}
	}
}

// watch looks up, until ctx ends, the sessions of requests in progress
// that were announced or whose end came, every tick or at once when woken.
// A look-up that fails leaves the requests alone: an outage ends nobody.
func (f *inflight) watch(ctx context.Context, tick time.Duration, lookUp func(context.Context, store.SessionID) (*cachedSession, error)) {
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-f.wake:
		}
		for _, id := range f.due(time.Now()) {
			lookCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			sess, err := lookUp(lookCtx, id)
			cancel()
			if err == nil {
				f.settle(id, sess)
			}
		}
	}
}
