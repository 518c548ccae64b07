package pgsession

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pgsession/caddy-pgsession/store"
)

// Long-lived responses (server-sent events, WebSockets, long polls) end
// with their session: every request the gate lets through is registered
// here until it finishes, and when the database announces that its session
// ended, a renewal finds its row gone, or its session's end comes, the
// request's context is cancelled, which ends the response. A request whose
// response has not begun by then is answered as the session's next request
// would be (see Handler.pass); one whose response has begun is cut.
//
// Registering costs one allocation: the flight holds the request passed on
// and its context, and is the response writer passed on, which tracks
// whether the response has begun and marks it private.

// errSessionEnded is what a site's write gets once its request's session
// has ended.
var errSessionEnded = errors.New("the session ended")

// The states of a flight's response. Only the site's calls to the writer
// (one at a time, as net/http requires) begin a response; only the watcher
// ends one, and never writes to it.
const (
	responseNotBegun int32 = iota
	responseBegun
	endedBeforeResponse // the session ended first: nothing reaches the client
	endedDuringResponse // the session ended while the response ran: the rest is cut
)

// flight is one request in progress: the request passed on and the
// response writer the site writes to.
type flight struct {
	// ResponseWriterWrapper passes on what the writer does not change
	// (Header, Push, Unwrap for http.ResponseController).
	caddyhttp.ResponseWriterWrapper
	request http.Request   // the request passed on, whose context ends with the session
	url     url.URL        // the request's URL, so that a rewrite after the gate leaves the gate's own
	ctx     requestContext // the request's context, which ends with the session
	session keptSession
	state   atomic.Int32
	private bool // cache_control on: privateResponse marks the response
	status  int  // the status the site set, until it is sent; only the request's goroutine uses it
	every   time.Duration

	// Room for header values, so that setting them costs no allocation.
	identity     [2]string // the identity headers' values
	cacheControl [1]string

	// Guarded by the shard's lock:
	prev, next *flight
	ends       time.Time // when the session ends unless renewed
	checkAt    time.Time // when to look at the session again: every renewal interval (zero until the watcher first sees it)
}

// inflightShards spreads the requests in progress over locks of their own,
// by session, so that requests of different sessions never wait for one
// another's registration.
const inflightShards = 32

// inflight tracks the requests in progress. Announcements are rare next to
// requests, so finding a user's requests walks them all rather than keeping
// an index that every request would pay for; a session's are in one shard.
type inflight struct {
	shards [inflightShards]inflightShard

	mu      sync.Mutex
	recheck map[store.SessionID]bool // sessions to look up again
	wake    chan struct{}
}

// inflightShard is a list of requests in progress, padded to a cache line
// of its own.
type inflightShard struct {
	mu    sync.Mutex
	first *flight
	_     [48]byte
}

func newInflight() *inflight {
	return &inflight{
		recheck: make(map[store.SessionID]bool),
		wake:    make(chan struct{}, 1),
	}
}

func (f *inflight) shard(key sessionKey) *inflightShard {
	return &f.shards[key[0]%inflightShards]
}

// start registers r under its session: the flight is the response writer
// and &fl.request the request to pass on, and finish must be called when it
// is done. private marks the response as privateResponse says; every is the
// renewal interval, the longest a request goes on unchecked (0: until its
// session's end), so that a session whose row went without a notification
// ends its requests too.
func (f *inflight) start(w http.ResponseWriter, r *http.Request, sess keptSession, private bool, every time.Duration) *flight {
	fl := &flight{session: sess, private: private, every: every, ends: sess.ends()}
	fl.ResponseWriter = w
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

// finish unregisters a request that is done, and says how its response
// went: responseNotBegun or responseBegun, or how its session's end caught it.
func (f *inflight) finish(fl *flight) int32 {
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

// invalidate marks the requests whose sessions the announcement names for a
// fresh look-up: a shortened session may still be live.
func (f *inflight) invalidate(inv store.Invalidation) {
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
			ids = f.shards[i].collect(ids, func(fl *flight) bool { return inv.All || users[fl.session.userID()] })
		}
	}
	for _, id := range inv.Sessions {
		if key, ok := keyOfID(id); ok {
			ids = f.shard(key).collect(ids, func(fl *flight) bool { return fl.session.key == key })
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
func (sh *inflightShard) collect(ids []store.SessionID, match func(*flight) bool) []store.SessionID {
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
func (f *inflight) due(now time.Time) []store.SessionID {
	var ids []store.SessionID
	for i := range f.shards {
		ids = f.shards[i].collect(ids, func(fl *flight) bool {
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

// settle applies a look-up made at now: an ended session's requests end, a
// live one's are checked again when it would end next, or a renewal
// interval on.
func (f *inflight) settle(id store.SessionID, sess *cachedSession, now time.Time) {
	key, ok := keyOfID(id)
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

// watch looks up, until ctx ends, the sessions of requests in progress
// that were announced or are due a look, every tick or at once when woken.
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
				f.settle(id, sess, time.Now())
			}
		}
	}
}

// end ends the request because its session ended: a response not begun
// never will, one begun is cut. The cancellation carries no cause of its
// own (context.Canceled), as a client's going away does, so that Caddy's
// reverse_proxy treats it as one, without a 502, an ERROR line or a mark
// against the upstream's health; the state says why.
func (fl *flight) end() {
	if !fl.state.CompareAndSwap(responseNotBegun, endedBeforeResponse) {
		fl.state.CompareAndSwap(responseBegun, endedDuringResponse)
	}
	fl.ctx.end()
}

// requestContext is the context of a request in flight: its parent's,
// until the request's session ends or the request is done. Most requests
// (a static file) never wait on it, so the cancellable context it needs for
// Done is made only when first asked for, instead of for every request:
// that and its registration with the parent cost a request as much as the
// rest of the gate did.
type requestContext struct {
	parent context.Context
	ended  atomic.Bool // the session ended or the request is done: Err says so even before Done is made

	mu    sync.Mutex
	inner atomic.Pointer[cancellable] // set once, under mu
}

// cancellable is the context Done and Value answer from once it is made.
type cancellable struct {
	context.Context
	cancel context.CancelFunc
}

// made returns the cancellable context, making it if need be: ended
// already if the request is.
func (c *requestContext) made() *cancellable {
	if in := c.inner.Load(); in != nil {
		return in
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if in := c.inner.Load(); in != nil {
		return in
	}
	ctx, cancel := context.WithCancel(c.parent)
	in := &cancellable{ctx, cancel}
	c.inner.Store(in)
	if c.ended.Load() {
		cancel()
	}
	return in
}

// end ends the context now, because its request's session ended. The
// cancellable context is made here if it was not yet, rare as this is, so
// that context.Cause agrees with Err.
func (c *requestContext) end() {
	c.mu.Lock()
	c.ended.Store(true)
	c.mu.Unlock()
	c.made().cancel()
}

// finish ends the context of a request that is done, cheaply when nothing
// waited on it: then nothing is left to tell but a late Err.
func (c *requestContext) finish() {
	c.mu.Lock()
	c.ended.Store(true)
	in := c.inner.Load()
	c.mu.Unlock()
	if in != nil {
		in.cancel()
	}
}

func (c *requestContext) Deadline() (time.Time, bool) { return c.parent.Deadline() }

func (c *requestContext) Done() <-chan struct{} { return c.made().Done() }

func (c *requestContext) Err() error {
	if in := c.inner.Load(); in != nil {
		return in.Err()
	}
	if c.ended.Load() {
		return context.Canceled
	}
	return c.parent.Err()
}

// Value answers from the cancellable context once it is made, so that a
// context derived from this one (context.WithCancel, context.AfterFunc)
// finds it as its parent to register with, instead of starting a goroutine
// to watch Done.
func (c *requestContext) Value(key any) any {
	if in := c.inner.Load(); in != nil {
		return in.Value(key)
	}
	return c.parent.Value(key)
}

// WriteHeader records the status; it is sent with the first byte of the
// response, or its first flush, as Caddy's encode handler does, so that a
// session that ends in between can still be answered for (net/http would
// not have sent the header yet either).
func (fl *flight) WriteHeader(status int) {
	// An informational answer (100, 103) comes before the real one, which
	// may still be a refusal.
	if status < 200 && status != http.StatusSwitchingProtocols {
		if s := fl.state.Load(); s == responseNotBegun || s == responseBegun {
			fl.ResponseWriter.WriteHeader(status)
		}
		return
	}
	switch fl.state.Load() {
	case responseNotBegun:
		if fl.status == 0 {
			fl.status = status
		}
	case responseBegun:
		fl.ResponseWriter.WriteHeader(status) // superfluous: net/http says so
	}
}

// begin begins the response, unless its session has ended: it says whether
// the response may be written. With send, the status recorded (200 if none)
// is sent, marked private first.
func (fl *flight) begin(send bool) bool {
	switch fl.state.Load() {
	case responseBegun:
		return true
	case responseNotBegun:
		if !fl.state.CompareAndSwap(responseNotBegun, responseBegun) {
			return false // the session ended just now
		}
		if !send {
			return true
		}
		status := cmp.Or(fl.status, http.StatusOK)
		if fl.private && status >= 200 {
			privateResponse(fl.Header(), status, &fl.cacheControl)
		}
		fl.ResponseWriter.WriteHeader(status)
		return true
	default:
		return false
	}
}

// done sends a status the site recorded without writing a byte (a 204, a
// 304, a redirect) once the site is done; a site that recorded none and
// wrote nothing has left the answer to Caddy (an error it returned).
func (fl *flight) done() {
	if fl.status != 0 {
		fl.begin(true)
	}
}

func (fl *flight) Write(p []byte) (int, error) {
	if fl.state.Load() != responseBegun && !fl.begin(true) {
		return 0, errSessionEnded
	}
	return fl.ResponseWriter.Write(p)
}

func (fl *flight) ReadFrom(r io.Reader) (int64, error) {
	if fl.state.Load() != responseBegun && !fl.begin(true) {
		return 0, errSessionEnded
	}
	return fl.ResponseWriterWrapper.ReadFrom(r)
}

func (fl *flight) Flush() { fl.FlushError() }

func (fl *flight) FlushError() error {
	if fl.state.Load() != responseBegun && !fl.begin(true) {
		return errSessionEnded
	}
	switch w := fl.ResponseWriter.(type) {
	case interface{ FlushError() error }:
		return w.FlushError()
	case http.Flusher:
		w.Flush()
		return nil
	}
	return http.NewResponseController(fl.ResponseWriter).Flush()
}

// Hijack hands over the connection (a WebSocket upgrade) after the status
// recorded, if any (101): the response has begun, and the request's context
// still ends it.
func (fl *flight) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !fl.begin(fl.status != 0) {
		return nil, nil, errSessionEnded
	}
	return http.NewResponseController(fl.ResponseWriter).Hijack()
}

// Interface guards
var (
	_ http.ResponseWriter = (*flight)(nil)
	_ http.Flusher        = (*flight)(nil)
	_ http.Hijacker       = (*flight)(nil)
	_ io.ReaderFrom       = (*flight)(nil)
	_ context.Context     = (*requestContext)(nil)
)
