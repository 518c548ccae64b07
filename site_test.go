package pgsession

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/internal/smtptest"
)

// The end-to-end tests of the site_*_test.go files run in process and in
// parallel: each test gets a database of its own and one or more sites,
// each an App and a Handler set up as Caddy sets them up for a Caddyfile,
// behind a real HTTP server (httptest), spoken to over HTTP as a browser, a
// script or an attacker would. What needs Caddy itself, as a process (a
// reload or restart, the Caddyfile's errors with file and line, the access
// log, the JSON config, a memory bound of the process), is in integration/.

// siteOptions is one server's configuration, as its Caddyfile would hold it.
type siteOptions struct {
	// db is the database_url of the global pg_session block.
	db string
	// app holds more lines of the global pg_session block, e.g. "cache_size 0".
	app string
	// handler holds the lines of the site's pg_session block.
	handler string
	// next is what the site serves behind the gate; nil is
	// respond "hello {http.auth.user.username}" 200.
	next caddyhttp.Handler
	// https serves the site over TLS, as for an https:// site address.
	https bool
	// http2 serves the site over TLS with HTTP/2, whose requests share a
	// connection at once.
	http2 bool
	// trustForwardedFor takes the client address from X-Forwarded-For, as
	// Caddy does for a request from an address listed in trusted_proxies.
	trustForwardedFor bool
	// listener, when set, is where the site serves, so that its options
	// can name its address before it starts.
	listener net.Listener
	// reloads is the site this one is a new config of, as after `caddy
	// reload`: it keeps that site's memory. Without it, a site is a server
	// of its own.
	reloads *testSite
	// smtp is the mail server of the app's smtp option, where Shared.Mail
	// delivers: tls off, no auth, from site@example.com (see smtpBlock).
	smtp *smtptest.Server
}

// testSite is one running server: the pg_session app and one site's handler.
type testSite struct {
	t       *testing.T
	opts    siteOptions
	app     *App
	handler *Handler
	next    caddyhttp.Handler
	server  *httptest.Server
	log     *caddyproc.SyncBuffer // what the site logged
	// registry is the config's metrics registry, which Caddy's /metrics serves.
	registry *prometheus.Registry
	// caddyServer is what Caddy's own request preparation reads: with no
	// trusted_proxies, the client address is the connection's.
	caddyServer *caddyhttp.Server

	mu     sync.Mutex
	served []servedRequest // the access log, in short

	cancel   context.CancelFunc
	started  bool
	stopOnce sync.Once
}

// servedRequest is one line of a site's access log.
type servedRequest struct {
	method, uri string
	status      int
}

// startSite starts a site with opts; it is stopped when the test ends.
func startSite(t *testing.T, opts siteOptions) *testSite {
	t.Helper()
	s := openSite(t, opts)
	require.NoError(t, s.start())
	return s
}

// openSite provisions a site's app and handler, as Caddy does when it loads
// a config, without starting anything: start does that.
func openSite(t *testing.T, opts siteOptions) *testSite {
	t.Helper()
	s := &testSite{t: t, opts: opts, log: new(caddyproc.SyncBuffer), caddyServer: new(caddyhttp.Server), next: opts.next}
	if s.next == nil {
		s.next = respond("hello {http.auth.user.username}")
	}
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(s.log), zapcore.DebugLevel))

	s.app = new(App)
	appBlock := "pg_session {\n\tdatabase_url " + opts.db + "\n" + opts.app + "\n" + smtpBlock(opts) + "\n}"
	require.NoError(t, s.app.UnmarshalCaddyfile(caddyfile.NewTestDispenser(appBlock)), "%s", appBlock)
	s.handler = new(Handler)
	handlerBlock := "pg_session {\n" + opts.handler + "\n}"
	require.NoError(t, s.handler.UnmarshalCaddyfile(caddyfile.NewTestDispenser(handlerBlock)), "%s", handlerBlock)
	cheapHashing(s.app)
	quickMail(s.app, opts.smtp)
	var of *App
	if opts.reloads != nil {
		of = opts.reloads.app
	}
	serverOf(s.app, of)

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	s.cancel, s.registry = cancel, ctx.GetMetricsRegistry()
	t.Cleanup(s.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the site at %s answered:\n%s\nand logged:\n%s", s.url(""), s.accessLog(), s.logs())
		}
	})
	require.NoError(t, s.app.Provision(ctx))
	logAppTo(s.app, logger.Named("pg_session"))
	require.NoError(t, provisionHandler(ctx, s.handler, s.app, logger.Named("http.handlers.pg_session")))
	return s
}

// start starts the app (connecting, installing the schema, listening) and
// serves the site. It calls nothing of the test's, so sites may start at once.
func (s *testSite) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = true
	if err := s.app.Start(); err != nil {
		return err
	}
	s.server = httptest.NewUnstartedServer(s)
	if s.opts.listener != nil {
		s.server.Listener.Close()
		s.server.Listener = s.opts.listener
	}
	// What the handler registers with Caddy's server when it is provisioned.
	s.server.Config.ConnContext = engine.WithLastKey
	if s.opts.https || s.opts.http2 {
		s.server.EnableHTTP2 = s.opts.http2
		s.server.StartTLS()
	} else {
		s.server.Start()
	}
	return nil
}

// stop stops serving and stops the app, as stopping Caddy does.
func (s *testSite) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		server, started := s.server, s.started
		s.mu.Unlock()
		if server != nil {
			server.CloseClientConnections() // streams still open, too
			server.Close()
		}
		if started {
			assert.NoError(s.t, s.app.Stop())
		}
		assert.NoError(s.t, s.app.Cleanup())
		s.cancel()
	})
}

// ServeHTTP prepares the request as Caddy's server does before its
// handlers run (the replacer, the vars with the client address, an access
// log's response recorder), then hands it to the pg_session handler, and
// answers an error it returns as Caddy does without handle_errors.
func (s *testSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()["Server"] = []string{"Caddy"}
	method, uri := r.Method, r.RequestURI
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, s.caddyServer)
	if s.opts.trustForwardedFor {
		if ip, ok := forwardedFor(r); ok {
			caddyhttp.SetVar(r.Context(), caddyhttp.TrustedProxyVarKey, true)
			caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, ip)
		}
	}
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	if err := s.handler.ServeHTTP(rec, r, s.next); err != nil {
		status := http.StatusInternalServerError
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode > 0 {
			status = he.StatusCode
		}
		if rec.Status() == 0 {
			rec.WriteHeader(status)
		}
	}
	s.mu.Lock()
	s.served = append(s.served, servedRequest{method, uri, rec.Status()})
	s.mu.Unlock()
}

// forwardedFor is the client address Caddy takes from a trusted proxy's
// request with its default client_ip_headers: the first valid address in
// X-Forwarded-For.
func forwardedFor(r *http.Request) (string, bool) {
	for part := range strings.SplitSeq(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",") {
		host, _, err := net.SplitHostPort(part)
		if err != nil {
			host = part
		}
		host, _, _ = strings.Cut(strings.TrimSpace(host), "%")
		if ip, err := netip.ParseAddr(host); err == nil {
			return ip.String(), true
		}
	}
	return "", false
}

// url is the address of path on the site.
func (s *testSite) url(path string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server == nil {
		return "(not serving)" + path
	}
	return s.server.URL + path
}

// statuses lists the status of every request the site has answered so far.
func (s *testSite) statuses() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, r := range s.served {
		out = append(out, r.status)
	}
	return out
}

// accessLog lists the requests the site has answered so far, one a line.
func (s *testSite) accessLog() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, r := range s.served {
		fmt.Fprintf(&b, "%s %s %d\n", r.method, r.uri, r.status)
	}
	return b.String()
}

// logs is everything the site has logged so far, one JSON object a line.
func (s *testSite) logs() string { return s.log.String() }

// logEntries is what the site has logged so far, each line decoded.
func (s *testSite) logEntries(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(s.log.String()) {
		var e map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &e), "log line %q", line)
		out = append(out, e)
	}
	return out
}

// logged reports whether the site has logged a message containing msg.
func (s *testSite) logged(t *testing.T, msg string) bool {
	t.Helper()
	for _, e := range s.logEntries(t) {
		if m, _ := e["msg"].(string); strings.Contains(m, msg) {
			return true
		}
	}
	return false
}

// waitListening waits until s has caught up with the database's
// announcements, from when on it answers known sessions from memory.
func waitListening(t *testing.T, s *testSite) {
	t.Helper()
	require.Eventually(t, func() bool { return s.logged(t, "listening for session changes") },
		30*time.Second, 10*time.Millisecond, "the site never caught up with the database's announcements")
}

// respond is Caddy's respond directive with body, placeholders and all.
func respond(body string) caddyhttp.Handler {
	sr := caddyhttp.StaticResponse{StatusCode: "200", Body: body}
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return sr.ServeHTTP(w, r, nil)
	})
}

// fileServer is Caddy's file_server with its root at root.
func fileServer(t *testing.T, root string) caddyhttp.Handler {
	t.Helper()
	fsrv := &fileserver.FileServer{Root: root}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	require.NoError(t, fsrv.Provision(ctx))
	end := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return fsrv.ServeHTTP(w, r, end)
	})
}

// reverseProxy passes requests on to the server at target (an httptest
// server's URL), flushing at once as reverse_proxy's flush_interval -1 does.
// headerUp are header names and values (with placeholders) to set on the
// request upstream, as reverse_proxy's header_up does.
func reverseProxy(target string, headerUp ...string) caddyhttp.Handler {
	to, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(to)
			pr.Out.Host = pr.In.Host
			repl, _ := pr.In.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
			for i := 0; i+1 < len(headerUp); i += 2 {
				pr.Out.Header.Set(headerUp[i], repl.ReplaceAll(headerUp[i+1], ""))
			}
		},
		FlushInterval: -1,
	}
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		proxy.ServeHTTP(w, r)
		return nil
	})
}

// upstream is a site behind the gate that remembers the requests it received.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

// newUpstream starts an upstream answering with answer; it stops when the test ends.
func newUpstream(t *testing.T, answer http.HandlerFunc) *upstream {
	up := &upstream{}
	up.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up.mu.Lock()
		up.seen = append(up.seen, r.Clone(r.Context()))
		up.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(up.Close)
	return up
}

// proxy is a reverse proxy to up, for siteOptions.next.
// openStream opens the stream at rawURL with the session token, reads its
// first event, and reads on in the background; the channel says when the
// stream ended.
func openStream(t *testing.T, rawURL, token string) <-chan time.Time {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	require.NoError(t, err)
	req.Header.Set("Cookie", cookieHeader(token))
	resp, err := attackerClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	lines := bufio.NewScanner(resp.Body)
	require.True(t, lines.Scan(), "the first event")
	ended := make(chan time.Time, 1)
	go func() {
		defer resp.Body.Close()
		for lines.Scan() {
		}
		ended <- time.Now()
	}()
	return ended
}

// newEventStream is an upstream that answers every request with a stream
// of server-sent events, one every 50 ms, until the request ends.
func newEventStream(t *testing.T) *upstream {
	return newUpstream(t, func(w http.ResponseWriter, r *http.Request) { streamEvents(w, r, 50*time.Millisecond) })
}

// streamEvents answers with a server-sent event every interval, until the
// request's context ends or a write fails.
func streamEvents(w http.ResponseWriter, r *http.Request, every time.Duration) {
	w.Header().Set("Content-Type", "text/event-stream")
	for i := 0; ; i++ {
		if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(every):
		}
	}
}

func (up *upstream) proxy(headerUp ...string) caddyhttp.Handler {
	return reverseProxy(up.URL, headerUp...)
}

func (up *upstream) requests() []*http.Request {
	up.mu.Lock()
	defer up.mu.Unlock()
	return append([]*http.Request(nil), up.seen...)
}

// ---------------------------------------------------------------------------
// Clients

// ---------------------------------------------------------------------------
// The database
