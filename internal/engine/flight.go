package engine

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
)

// A request in flight: the request and response writer the gate passes on
// in its place, and the context that ends with the session (see
// flights.go for the registry that ends it).

// errSessionEnded is what a site's write gets once its request's session
// has ended.
var errSessionEnded = errors.New("the session ended")

// The states of a flight's response. Only the site's calls to the writer
// (one at a time, as net/http requires) begin a response; only the watcher
// ends one, and never writes to it.
const (
	responseNotBegun int32 = iota
	responseBegun
	EndedBeforeResponse // the session ended first: nothing reaches the client
	EndedDuringResponse // the session ended while the response ran: the rest is cut
)

// Flight is one request in progress: the request passed on and the
// response writer the site writes to.
type Flight struct {
	// The writer passed on, which passes on what the flight does not
	// change (Header; Push, Unwrap for http.ResponseController below).
	http.ResponseWriter
	request http.Request   // the request passed on, whose context ends with the session
	url     url.URL        // the request's URL, so that a rewrite after the gate leaves the gate's own
	ctx     requestContext // the request's context, which ends with the session
	session Session
	state   atomic.Int32
	status  int // the status the site set, until it is sent; only the request's goroutine uses it
	every   time.Duration
	// markPrivate is the registry's, when the response is to be marked
	// private; nil otherwise.
	markPrivate func(hdr http.Header, status int, into *[1]string)

	// Room for header values, so that setting them costs no allocation.
	headers      [4]string // the root's: see HeaderRoom
	cacheControl [1]string

	// Guarded by the shard's lock:
	prev, next *Flight
	ends       time.Time // when the session ends unless renewed
	checkAt    time.Time // when to look at the session again: every renewal interval (zero until the watcher first sees it)
}

// Request is the request to pass on in r's place: a copy whose context
// ends with the session.
func (fl *Flight) Request() *http.Request { return &fl.request }

// HeaderRoom is room for the identity headers' values of the request
// passed on, so that setting them costs no allocation.
func (fl *Flight) HeaderRoom() *[4]string { return &fl.headers }

// end ends the request because its session ended: a response not begun
// never will, one begun is cut. The cancellation carries no cause of its
// own (context.Canceled), as a client's going away does, so that Caddy's
// reverse_proxy treats it as one, without a 502, an ERROR line or a mark
// against the upstream's health; the state says why.
func (fl *Flight) end() {
	if !fl.state.CompareAndSwap(responseNotBegun, EndedBeforeResponse) {
		fl.state.CompareAndSwap(responseBegun, EndedDuringResponse)
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
	c.ended.Store(true)
	c.made().cancel()
}

// finish ends the context of a request that is done, cheaply when nothing
// waited on it: then nothing is left to tell but a late Err. It takes no
// lock: made stores the context before it reads ended, and this stores
// ended before it reads the context, so one of the two always cancels it.
func (c *requestContext) finish() {
	c.ended.Store(true)
	if in := c.inner.Load(); in != nil {
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
func (fl *Flight) WriteHeader(status int) {
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
func (fl *Flight) begin(send bool) bool {
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
		if fl.markPrivate != nil && status >= 200 {
			fl.markPrivate(fl.Header(), status, &fl.cacheControl)
		}
		fl.ResponseWriter.WriteHeader(status)
		return true
	default:
		return false
	}
}

// SiteDone sends a status the site recorded without writing a byte (a 204, a
// 304, a redirect) once the site is done; a site that recorded none and
// wrote nothing has left the answer to Caddy (an error it returned).
func (fl *Flight) SiteDone() {
	if fl.status != 0 {
		fl.begin(true)
	}
}

func (fl *Flight) Write(p []byte) (int, error) {
	if fl.state.Load() != responseBegun && !fl.begin(true) {
		return 0, errSessionEnded
	}
	return fl.ResponseWriter.Write(p)
}

// ReadFrom lets a file reach the connection as the writer passed on does
// (sendfile), or copies it.
func (fl *Flight) ReadFrom(r io.Reader) (int64, error) {
	if fl.state.Load() != responseBegun && !fl.begin(true) {
		return 0, errSessionEnded
	}
	if rf, ok := fl.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(fl.ResponseWriter, r)
}

func (fl *Flight) Flush() { fl.FlushError() }

func (fl *Flight) FlushError() error {
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
func (fl *Flight) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !fl.begin(fl.status != 0) {
		return nil, nil, errSessionEnded
	}
	return http.NewResponseController(fl.ResponseWriter).Hijack()
}

// Push pushes as the writer passed on does, if it can (HTTP/2).
func (fl *Flight) Push(target string, opts *http.PushOptions) error {
	if p, ok := fl.ResponseWriter.(http.Pusher); ok {
		return p.Push(target, opts)
	}
	return http.ErrNotSupported
}

// Unwrap is the writer passed on, for http.ResponseController.
func (fl *Flight) Unwrap() http.ResponseWriter { return fl.ResponseWriter }

// Interface guards
var (
	_ http.ResponseWriter = (*Flight)(nil)
	_ http.Flusher        = (*Flight)(nil)
	_ http.Hijacker       = (*Flight)(nil)
	_ http.Pusher         = (*Flight)(nil)
	_ io.ReaderFrom       = (*Flight)(nil)
	_ context.Context     = (*requestContext)(nil)
)
