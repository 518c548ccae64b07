package pgsession

import (
	"bufio"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	_ "github.com/caddyserver/caddy/v2/modules/logging"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/routes"
	"github.com/pgsession/caddy-pgsession/internal/webtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// Requests in flight when their session ends, through Caddy's own
// reverse_proxy: one whose response has not begun gets what the session's
// next request gets, one whose response runs is cut, and neither is a 502
// or an ERROR line.

// provisioning serializes the provisioning of Caddy's modules, which Caddy
// does one config at a time: reverse_proxy's Provision sets package state.
var provisioning sync.Mutex

// caddyReverseProxy is Caddy's reverse_proxy to the upstream at target,
// flushing at once (flush_interval -1), provisioned as a config load
// provisions it, with its log in a file of the test's: the lines it returns.
func caddyReverseProxy(t *testing.T, target string) (caddyhttp.Handler, func() []map[string]any) {
	t.Helper()
	provisioning.Lock()
	defer provisioning.Unlock()
	u, err := url.Parse(target)
	require.NoError(t, err)
	logFile := filepath.Join(t.TempDir(), "reverse_proxy.log")
	cfg := &caddy.Config{Logging: &caddy.Logging{Logs: map[string]*caddy.CustomLog{
		"proxy": {
			BaseLog: caddy.BaseLog{
				WriterRaw:  json.RawMessage(`{"output":"file","filename":` + strconv.Quote(logFile) + `}`),
				EncoderRaw: json.RawMessage(`{"format":"json"}`),
				Level:      "DEBUG",
			},
			Include: []string{"http.handlers.reverse_proxy"},
		},
	}}}
	base, err := caddy.ProvisionContext(cfg)
	require.NoError(t, err)
	ctx, cancel := caddy.NewContext(base)
	t.Cleanup(cancel)
	mod, err := ctx.LoadModuleByID("http.handlers.reverse_proxy",
		json.RawMessage(`{"upstreams":[{"dial":"`+u.Host+`"}],"flush_interval":-1}`))
	require.NoError(t, err)
	proxy := mod.(caddyhttp.MiddlewareHandler)
	end := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	handler := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return proxy.ServeHTTP(w, r, end)
	})
	lines := func() []map[string]any {
		data, err := os.ReadFile(logFile)
		if os.IsNotExist(err) {
			return nil
		}
		require.NoError(t, err)
		var out []map[string]any
		for line := range strings.Lines(string(data)) {
			var e map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &e), "log line %q", line)
			out = append(out, e)
		}
		return out
	}
	return handler, lines
}

// errorLines are the log entries at ERROR or above.
func errorLines(entries []map[string]any) []map[string]any {
	var out []map[string]any
	for _, e := range entries {
		switch e["level"] {
		case "error", "dpanic", "panic", "fatal":
			out = append(out, e)
		}
	}
	return out
}

// slowUpstream answers /slow never (until its request is cancelled),
// /stream with an event and then one every 20 ms until cancelled, and
// anything else within a couple of milliseconds; it counts the /slow and
// /stream requests of each trial (the query's trial).
type slowUpstream struct {
	mu      sync.Mutex
	arrived map[string]int
}

func (up *slowUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/slow", "/stream":
		up.mu.Lock()
		up.arrived[r.URL.Query().Get("trial")]++
		up.mu.Unlock()
	}
	switch r.URL.Path {
	case "/slow":
		<-r.Context().Done()
	case "/stream":
		streamEvents(w, r, 20*time.Millisecond)
	default:
		select {
		case <-r.Context().Done():
		case <-time.After(time.Duration(rand.IntN(2000)) * time.Microsecond):
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok")
		}
	}
}

func (up *slowUpstream) count(trial string) int {
	up.mu.Lock()
	defer up.mu.Unlock()
	return up.arrived[trial]
}

// outcome is what a client saw of one request.
type outcome struct {
	status   int
	header   http.Header
	body     string
	cut      bool // the body ended with an error, not its end
	complete bool // the body was read to its end
	err      error
}

// fetch sends a GET with the session cookie and reads the whole answer.
func fetch(client *http.Client, rawURL, token, accept string) outcome {
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return outcome{err: err}
	}
	req.Header.Set("Cookie", cookieHeader(token))
	req.Header.Set("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return outcome{status: resp.StatusCode, header: resp.Header, body: string(data), cut: err != nil, complete: err == nil}
}

// A request whose session ends while the upstream works on it gets exactly
// what the session's next request gets (401 JSON, or the login page for a
// browser), never a 502; a stream already running is cut, not ended as if
// complete; neither is logged as an error, by the gate or by reverse_proxy,
// and requests_ended_total counts them. The session ends each of three
// ways, in turn: a logout on the server, a logout on another server, a
// DELETE in SQL. Quick requests sent all along race the end.
func TestRequestsInFlightWhenTheirSessionEnds(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	up := &slowUpstream{arrived: make(map[string]int)}
	upstream := newUpstream(t, up.ServeHTTP)
	proxy, proxyLog := caddyReverseProxy(t, upstream.URL)
	a := startSite(t, siteOptions{db: db.url, next: proxy})
	b := startSite(t, siteOptions{db: db.url})
	waitListening(t, a)

	tr := newTransport()
	tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = 0, 200
	t.Cleanup(tr.CloseIdleConnections)
	client := webtest.NewBare(tr)
	const trials, slowAPI, slowPages, streams = 99, 4, 2, 2
	const api, page = "application/json", "text/html,application/xhtml+xml,*/*;q=0.8"
	var slowSeen, streamsSeen, quickSeen, quickEnded, quickCut, quickWhole int

	for trial := range trials {
		token, _ := db.sessionInDB(t, alice)
		q := "?trial=" + strconv.Itoa(trial)
		var wg sync.WaitGroup
		results := make([]outcome, slowAPI+slowPages)
		for i := range results {
			accept := api
			if i >= slowAPI {
				accept = page
			}
			wg.Go(func() { results[i] = fetch(client, a.url("/slow"+q), token, accept) })
		}
		streamEnds := make([]chan outcome, streams)
		var streamsBegun sync.WaitGroup
		for i := range streamEnds {
			streamEnds[i] = make(chan outcome, 1)
			streamsBegun.Add(1)
			go func() {
				begun := sync.OnceFunc(streamsBegun.Done)
				defer begun()
				req, err := http.NewRequest(http.MethodGet, a.url("/stream"+q), nil)
				if err != nil {
					streamEnds[i] <- outcome{err: err}
					return
				}
				req.Header.Set("Cookie", cookieHeader(token))
				resp, err := client.Do(req)
				if err != nil {
					streamEnds[i] <- outcome{err: err}
					return
				}
				defer resp.Body.Close()
				lines := bufio.NewScanner(resp.Body)
				for lines.Scan() {
					begun()
				}
				streamEnds[i] <- outcome{status: resp.StatusCode, cut: lines.Err() != nil, complete: lines.Err() == nil}
			}()
		}
		stop := make(chan struct{})
		var quick []outcome
		var quickMu sync.Mutex
		for range 2 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					o := fetch(client, a.url("/quick"+q), token, api)
					quickMu.Lock()
					quick = append(quick, o)
					quickMu.Unlock()
					if o.status != http.StatusOK {
						return
					}
				}
			})
		}
		require.Eventually(t, func() bool { return up.count(strconv.Itoa(trial)) == slowAPI+slowPages+streams },
			10*time.Second, time.Millisecond, "trial %d: the upstream never had every slow request", trial)
		streamsBegun.Wait() // each has had its first event

		switch trial % 3 {
		case 0:
			require.Equal(t, http.StatusOK, sendRaw(t, http.MethodPost, a.url("/api/auth/logout"), "", "Cookie", cookieHeader(token)).StatusCode)
		case 1:
			require.Equal(t, http.StatusOK, sendRaw(t, http.MethodPost, b.url("/api/auth/logout"), "", "Cookie", cookieHeader(token)).StatusCode)
		case 2:
			require.Equal(t, int64(1), db.exec(t, `DELETE FROM pgsession.sessions WHERE id = $1`, string(store.HashToken(token))))
		}
		for i, ended := range streamEnds {
			select {
			case o := <-ended:
				require.NoError(t, o.err)
				assert.Equal(t, http.StatusOK, o.status, "trial %d: stream %d", trial, i)
				assert.True(t, o.cut, "trial %d: stream %d ended as if complete, not cut", trial, i)
				streamsSeen++
			case <-time.After(10 * time.Second):
				t.Fatalf("trial %d: stream %d outlived its session", trial, i)
			}
		}
		close(stop)
		wg.Wait()

		next := fetch(client, a.url("/slow"+q), token, api)
		require.NoError(t, next.err)
		require.Equal(t, http.StatusUnauthorized, next.status)
		nextPage := fetch(client, a.url("/slow"+q), token, page)
		require.Equal(t, http.StatusSeeOther, nextPage.status)
		for i, o := range results {
			require.NoError(t, o.err, "trial %d: request %d", trial, i)
			want := next
			if i >= slowAPI {
				want = nextPage
			}
			assert.Equal(t, want.status, o.status, "trial %d: request %d: %s", trial, i, o.body)
			assert.Equal(t, want.body, o.body, "trial %d: request %d", trial, i)
			for _, name := range []string{"Content-Type", "Cache-Control", "Set-Cookie", "Location"} {
				assert.Equal(t, want.header.Values(name), o.header.Values(name), "trial %d: request %d: %s", trial, i, name)
			}
			slowSeen++
		}
		for _, o := range quick {
			quickSeen++
			switch {
			case o.err != nil:
				// Cut before its first bytes left net/http's buffer.
				assert.ErrorContains(t, o.err, "EOF")
				quickCut++
			case o.status == http.StatusOK && o.complete:
				// Whole, though the gate may have cut it just after the
				// last byte had gone, and counted it as ended.
				assert.Equal(t, "ok", o.body)
				quickWhole++
			case o.status == http.StatusOK && o.cut:
				quickCut++
			case o.status == http.StatusUnauthorized:
				assert.Equal(t, next.body, o.body)
				quickEnded++
			default:
				t.Errorf("trial %d: a quick request got %d %q", trial, o.status, o.body)
			}
		}
		if t.Failed() {
			break
		}
	}
	t.Logf("%d trials: %d slow requests refused as the next one is, %d streams cut; %d quick requests, %d refused, %d cut",
		trials, slowSeen, streamsSeen, quickSeen, quickEnded, quickCut)

	for _, status := range a.statuses() {
		assert.Less(t, status, 500, "a 5xx answered")
	}
	assert.Empty(t, errorLines(a.logEntries(t)), "the site logged an error")
	proxied := proxyLog()
	require.NotEmpty(t, proxied, "reverse_proxy's log, which notes each cut stream at WARN")
	assert.Empty(t, errorLines(proxied), "reverse_proxy logged an error")
	before := a.metric(t, "requests_ended_total", "when", "before_response")
	during := a.metric(t, "requests_ended_total", "when", "during_response")
	assert.GreaterOrEqual(t, before, float64(slowSeen))
	assert.LessOrEqual(t, before, float64(slowSeen+quickEnded), "a quick request refused by the gate is no ended one")
	assert.GreaterOrEqual(t, during, float64(streamsSeen))
	assert.LessOrEqual(t, during, float64(streamsSeen+quickCut+quickWhole))
}

// With error_pages caddy, a request whose session ends before its response
// goes to the site's handle_errors as the next request does: the gate
// returns Caddy's 401 error, with the reason in the placeholder.
func TestARequestEndedWithItsSessionGoesToHandleErrors(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	up := &slowUpstream{arrived: make(map[string]int)}
	upstream := newUpstream(t, up.ServeHTTP)
	proxy, proxyLog := caddyReverseProxy(t, upstream.URL)
	a := startSite(t, siteOptions{db: db.url, handler: "error_pages caddy"})
	waitListening(t, a)
	// Served here rather than by the site, to see the error the gate
	// returns, as Caddy's server hands it to handle_errors.
	var mu sync.Mutex
	var errs []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddy.NewReplacer()
		r = caddyhttp.PrepareRequest(r, repl, w, new(caddyhttp.Server))
		err := a.handler.ServeHTTP(w, r, proxy)
		if err == nil {
			return
		}
		var he caddyhttp.HandlerError
		if !assert.ErrorAs(t, err, &he) {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		mu.Lock()
		errs = append(errs, strconv.Itoa(he.StatusCode)+" "+repl.ReplaceAll("{"+routes.ReasonPlaceholder+"}", ""))
		mu.Unlock()
		w.WriteHeader(he.StatusCode)
	}))
	t.Cleanup(front.Close)

	token, _ := db.sessionInDB(t, alice)
	done := make(chan outcome, 1)
	go func() { done <- fetch(attackerClient, front.URL+"/slow?trial=x", token, "application/json") }()
	require.Eventually(t, func() bool { return up.count("x") == 1 }, 10*time.Second, time.Millisecond)
	db.exec(t, `DELETE FROM pgsession.sessions WHERE id = $1`, string(store.HashToken(token)))
	var o outcome
	select {
	case o = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the request outlived its session")
	}
	require.NoError(t, o.err)
	assert.Equal(t, http.StatusUnauthorized, o.status)
	next := fetch(attackerClient, front.URL+"/slow?trial=x", token, "application/json")
	assert.Equal(t, http.StatusUnauthorized, next.status)
	mu.Lock()
	assert.Equal(t, []string{"401 session_expired", "401 session_expired"}, errs)
	mu.Unlock()
	assert.Empty(t, errorLines(a.logEntries(t)))
	assert.Empty(t, errorLines(proxyLog()))
}
