package engine

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/pgsession/caddy-pgsession/store"
)

// Long-lived responses (server-sent events, WebSockets, long polls) end
// with their session: every request the gate lets through is registered
// here until it finishes, and when the database announces that its session
// ended, a renewal finds its row gone, or its session's end comes, the
// request's context is cancelled, which ends the response. A request whose
// response has not begun by then is answered as the session's next request
// would be (the root's Handler.pass); one whose response has begun is cut.
//
// Registering costs one allocation: the flight holds the request passed on
// and its context, and is the response writer passed on, which tracks
// whether the response has begun and marks it private.

// inflightShards spreads the requests in progress over locks of their own,
// by session, so that requests of different sessions never wait for one
// another's registration.
const inflightShards = 32

// Flights tracks the requests in progress. Announcements are rare next to
// requests, so finding a user's requests walks them all rather than keeping
// an index that every request would pay for; a session's are in one shard.
type Flights struct {
	shards [inflightShards]inflightShard

	// markPrivate marks a response private just before its headers are
	// sent, keeping its value in into, which the request has room for.
	markPrivate func(hdr http.Header, status int, into *[1]string)

	mu      sync.Mutex
	recheck map[store.SessionID]bool // sessions to look up again
	wake    chan struct{}
}

// inflightShard is a list of requests in progress, padded to a cache line
// of its own.
type inflightShard struct {
	mu    sync.Mutex
	first *Flight
	_     [48]byte
}

// NewFlights makes a registry of no requests in progress, whose requests
// that ask for it have their responses marked private by markPrivate.
func NewFlights(markPrivate func(hdr http.Header, status int, into *[1]string)) *Flights {
	return &Flights{
		markPrivate: markPrivate,
		recheck:     make(map[store.SessionID]bool),
		wake:        make(chan struct{}, 1),
	}
}

func (f *Flights) shard(key Key) *inflightShard {
	return &f.shards[key[0]%inflightShards]
}

// Start registers r under its session: the flight is the response writer
// and fl.Request() the request to pass on, and Finish must be called when it
// is done. private marks the response as markPrivate says; every is the
// renewal interval, the longest a request goes on unchecked (0: until its
// session's end), so that a session whose row went without a notification
// ends its requests too.
func (f *Flights) Start(w http.ResponseWriter, r *http.Request, sess Session, private bool, every time.Duration) *Flight {
	fl := &Flight{ResponseWriter: w, session: sess, every: every, ends: sess.ends()}
	if private {
		fl.markPrivate = f.markPrivate
	}
	fl.ctx.parent = r.Context()
	fl.request = *r.WithContext(&fl.ctx) // a copy in the flight, not another allocation
	if r.URL != nil {
		fl.url = *r.URL
		fl.request.URL = &fl.url
	}
	sh := f.shard(sess.key)
	sh.mu.Lock()
	fl.next = sh.first
	if sh.first != nil {
		sh.first.prev = fl
	}
	sh.first = fl
	sh.mu.Unlock()
	return fl
}

// Finish unregisters a request that is done, and says how its response
// went: responseNotBegun or responseBegun, or how its session's end caught
// it (EndedBeforeResponse, EndedDuringResponse).
func (f *Flights) Finish(fl *Flight) int32 {
	sh := f.shard(fl.session.key)
	sh.mu.Lock()
	if fl.prev != nil {
		fl.prev.next = fl.next
	} else {
		sh.first = fl.next
	}
	if fl.next != nil {
		fl.next.prev = fl.prev
	}
	sh.mu.Unlock()
	fl.ctx.finish()
	return fl.state.Load()
}

// Invalidate marks the requests whose sessions the announcement names for a
// fresh look-up: a shortened session may still be live.
func (f *Flights) Invalidate(inv store.Invalidation) {
	var ids []store.SessionID
	if inv.All || len(inv.Users) > 0 {
		var users map[store.UserID]bool
		if len(inv.Users) > 0 {
			users = make(map[store.UserID]bool, len(inv.Users))
			for _, u := range inv.Users {
				users[u] = true
			}
		}
		for i := range f.shards {
			ids = f.shards[i].collect(ids, func(fl *Flight) bool { return inv.All || users[fl.session.userID()] })
		}
	}
	for _, id := range inv.Sessions {
		if key, ok := KeyOfID(id); ok {
			ids = f.shard(key).collect(ids, func(fl *Flight) bool { return fl.session.key == key })
		}
	}
	if len(ids) == 0 {
		return
	}
	f.mu.Lock()
	for _, id := range ids {
		f.recheck[id] = true
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// collect appends the sessions of the shard's requests that match.
func (sh *inflightShard) collect(ids []store.SessionID, match func(*Flight) bool) []store.SessionID {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for fl := sh.first; fl != nil; fl = fl.next {
		if match(fl) {
			ids = append(ids, fl.session.id())
		}
	}
	return ids
}

// due takes the sessions to look up again: those marked, those whose end
// has come by now, and those not looked at for a renewal interval.
func (f *Flights) due(now time.Time) []store.SessionID {
	var ids []store.SessionID
	for i := range f.shards {
		ids = f.shards[i].collect(ids, func(fl *Flight) bool {
			if fl.checkAt.IsZero() && fl.every > 0 {
				fl.checkAt = now.Add(fl.every)
			}
			return !now.Before(fl.ends) || !fl.checkAt.IsZero() && !now.Before(fl.checkAt)
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.recheck[id] = true // once each, however many requests it has
	}
	ids = ids[:0]
	for id := range f.recheck {
		ids = append(ids, id)
	}
	clear(f.recheck)
	return ids
}

// End ends the requests of the session id, which a renewal found gone.
func (f *Flights) End(id store.SessionID) { f.settle(id, nil, time.Time{}) }

// settle applies a look-up made at now: an ended session's requests end, a
// live one's are checked again when it would end next, or a renewal
// interval on.
func (f *Flights) settle(id store.SessionID, sess *cachedSession, now time.Time) {
	key, ok := KeyOfID(id)
	if !ok {
		return
	}
	sh := f.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for fl := sh.first; fl != nil; fl = fl.next {
		if fl.session.key != key {
			continue
		}
		if sess == nil {
			fl.end()
			continue
		}
		fl.ends = sess.ends()
		if fl.every > 0 {
			fl.checkAt = now.Add(fl.every)
		}
	}
}

// Watch looks up, until ctx ends, the sessions of requests in progress
// that were announced or are due a look, every tick or at once when woken.
// A look-up that fails leaves the requests alone: an outage ends nobody; one
// that finds the session gone answers the zero Session.
func (f *Flights) Watch(ctx context.Context, tick time.Duration, lookUp func(context.Context, store.SessionID) (Session, error)) {
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
				f.settle(id, sess.cachedSession, time.Now())
			}
		}
	}
}
