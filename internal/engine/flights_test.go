package engine

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// markPrivate stands in for the root's privateResponse, as far as these
// tests' responses go: a page is not stored, anything else is private.
func markPrivate(hdr http.Header, status int, into *[1]string) {
	into[0] = "private, no-cache"
	if hdr.Get("Content-Type") == "text/html" {
		into[0] = "no-store"
	}
	hdr["Cache-Control"] = into[:]
}

// Requests in progress end when their session is found ended, and are
// looked at again when their session would end, and every renewal interval.
func TestRequestsInProgressEndWithTheirSession(t *testing.T) {
	f := NewFlights(markPrivate)
	now := time.Now()
	s := testSession("t", "alice", now)
	s.expires = now.Add(time.Minute).UnixNano()
	fl := f.Start(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), s, false, 10*time.Second)
	r := &fl.request

	assert.Empty(t, f.due(now), "nothing to look at yet")
	f.Invalidate(store.Invalidation{Users: []store.UserID{"bob"}})
	assert.Empty(t, f.due(now), "another user's change")
	f.Invalidate(store.Invalidation{Users: []store.UserID{"alice"}})
	assert.Equal(t, []store.SessionID{s.id()}, f.due(now))
	f.settle(s.id(), s.cachedSession, now) // still live
	require.NoError(t, r.Context().Err())

	assert.Equal(t, []store.SessionID{s.id()}, f.due(now.Add(11*time.Second)), "a renewal interval without a look")
	f.settle(s.id(), s.cachedSession, now.Add(11*time.Second))
	assert.Empty(t, f.due(now.Add(12*time.Second)))
	assert.Equal(t, []store.SessionID{s.id()}, f.due(now.Add(2*time.Minute)), "its end came")
	f.settle(s.id(), nil, now.Add(2*time.Minute))
	assert.ErrorIs(t, r.Context().Err(), context.Canceled)

	assert.Equal(t, EndedBeforeResponse, f.Finish(fl))
	f.Invalidate(store.Invalidation{All: true})
	assert.Empty(t, f.due(now), "a finished request is forgotten")
}

// callsWriter records what a response writer was asked to do.
type callsWriter struct {
	header   http.Header
	statuses []int
	body     strings.Builder
	flushes  int
}

func (w *callsWriter) Header() http.Header         { return w.header }
func (w *callsWriter) WriteHeader(status int)      { w.statuses = append(w.statuses, status) }
func (w *callsWriter) Write(p []byte) (int, error) { return w.body.Write(p) }
func (w *callsWriter) Flush()                      { w.flushes++ }

// The response writer of a request in flight sends the status the site set
// with its first byte or flush, or when the site is done, and nothing once
// its session has ended first; informational answers pass at once.
func TestTheResponseWriterOfARequestInFlight(t *testing.T) {
	s := testSession("t", "alice", time.Now())
	s.expires = time.Now().Add(time.Hour).UnixNano()
	css := func(fl *Flight) { fl.Header().Set("Content-Type", "text/css") }
	for _, tc := range []struct {
		name     string
		site     func(fl *Flight)
		end      bool // the session ends after the site ran
		state    int32
		statuses []int // what reached the client
		body     string
		cache    string
	}{
		{"a status alone is sent when the site is done", func(fl *Flight) { css(fl); fl.WriteHeader(http.StatusNoContent); fl.SiteDone() },
			false, responseBegun, []int{http.StatusNoContent}, "", "private, no-cache"},
		{"a status is held back until the first byte", func(fl *Flight) { fl.WriteHeader(http.StatusCreated) },
			false, responseNotBegun, nil, "", ""},
		{"a held-back status dies with the session", func(fl *Flight) { fl.WriteHeader(http.StatusCreated) },
			true, EndedBeforeResponse, nil, "", ""},
		{"the first byte sends the status", func(fl *Flight) { css(fl); fl.WriteHeader(http.StatusCreated); fl.Write([]byte("x")) },
			true, EndedDuringResponse, []int{http.StatusCreated}, "x", "private, no-cache"},
		{"a flush sends the status", func(fl *Flight) { fl.Header().Set("Content-Type", "text/html"); fl.Flush() },
			false, responseBegun, []int{http.StatusOK}, "", "no-store"},
		{"an informational answer passes, the real one waits", func(fl *Flight) { fl.WriteHeader(http.StatusEarlyHints) },
			true, EndedBeforeResponse, []int{http.StatusEarlyHints}, "", ""},
		{"nothing written leaves the answer to Caddy", func(fl *Flight) { fl.SiteDone() },
			false, responseNotBegun, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFlights(markPrivate)
			w := &callsWriter{header: make(http.Header)}
			fl := f.Start(w, httptest.NewRequest(http.MethodGet, "/", nil), s, true, time.Minute)
			tc.site(fl)
			if tc.end {
				f.settle(s.id(), nil, time.Now())
				_, err := fl.Write([]byte("more"))
				assert.ErrorIs(t, err, errSessionEnded, "a write after the end")
				assert.ErrorIs(t, fl.FlushError(), errSessionEnded, "a flush after the end")
			}
			assert.Equal(t, tc.state, f.Finish(fl))
			assert.Equal(t, tc.statuses, w.statuses)
			assert.Equal(t, tc.body, w.body.String())
			assert.Equal(t, tc.cache, w.header.Get("Cache-Control"))
		})
	}
}

// pushReadWriter is a writer that can push, take a reader whole (as
// net/http's does, with sendfile) and set a write deadline.
type pushReadWriter struct {
	*httptest.ResponseRecorder
	pushed   []string
	readFrom int
	deadline time.Time
}

func (w *pushReadWriter) Push(target string, _ *http.PushOptions) error {
	w.pushed = append(w.pushed, target)
	return nil
}

func (w *pushReadWriter) ReadFrom(r io.Reader) (int64, error) {
	w.readFrom++
	return io.Copy(w.ResponseRecorder, r)
}

func (w *pushReadWriter) SetWriteDeadline(t time.Time) error {
	w.deadline = t
	return nil
}

// The writer of a request in flight passes on what it does not change, as
// Caddy's ResponseWriterWrapper did: a push, a reader taken whole (or
// copied when the writer below cannot take it), and what
// http.ResponseController asks of the writer below.
func TestTheResponseWriterOfARequestInFlightPassesOnTheRest(t *testing.T) {
	s := testSession("t", "alice", time.Now())
	f := NewFlights(markPrivate)
	r := httptest.NewRequest(http.MethodGet, "/", nil)

	w := &pushReadWriter{ResponseRecorder: httptest.NewRecorder()}
	fl := f.Start(w, r, s, false, time.Minute)
	require.NoError(t, fl.Push("/style.css", nil))
	assert.Equal(t, []string{"/style.css"}, w.pushed)
	n, err := fl.ReadFrom(strings.NewReader("file"))
	require.NoError(t, err)
	assert.Equal(t, int64(4), n)
	assert.Equal(t, 1, w.readFrom, "the writer below took the reader")
	deadline := time.Now().Add(time.Minute)
	require.NoError(t, http.NewResponseController(fl).SetWriteDeadline(deadline))
	assert.Equal(t, deadline, w.deadline, "ResponseController reached the writer below")
	f.Finish(fl)
	assert.Equal(t, "file", w.Body.String())

	plain := &callsWriter{header: make(http.Header)}
	fl = f.Start(plain, r, s, false, time.Minute)
	assert.ErrorIs(t, fl.Push("/style.css", nil), http.ErrNotSupported)
	n, err = fl.ReadFrom(strings.NewReader("copied"))
	require.NoError(t, err)
	assert.Equal(t, int64(6), n)
	f.Finish(fl)
	assert.Equal(t, "copied", plain.body.String())
	assert.Equal(t, []int{http.StatusOK}, plain.statuses)
}
