// Package integration holds the end-to-end tests that need Caddy itself as
// a process: the development Caddy binary, built once per run, against a
// throwaway PostgreSQL, spoken to over HTTP. How the handler behaves is
// tested in process, and in parallel, in the root package (site_test.go).
package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/internal/pgtest/migrated"
	"github.com/pgsession/caddy-pgsession/internal/webtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// caddyBinary is the development binary every test runs.
var caddyBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pgsession-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: creating temp folder:", err)
		os.Exit(1)
	}
	// The binary gets the race detector when the tests do, so the handler's
	// concurrency is checked under real traffic.
	caddyBinary, err = caddyproc.Build(dir, raceEnabled)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// site describes one Caddy server for a test: its Caddyfile is rendered from
// caddyfileTemplate with these fields.
type site struct {
	DatabaseURL     string
	CleanupInterval string // e.g. "1h"
	HandlerOptions  string // lines inside the site's pg_session block
	Upstream        string // host:port to reverse_proxy to; empty serves a fixed body
	UpstreamOptions string // lines inside the reverse_proxy block
	Root            string // a folder to serve with file_server, instead of Upstream
	GlobalOptions   string // lines inside the global options block
	AppOptions      string // lines inside the global pg_session block
	Port, AdminPort int
}

const caddyfileTemplate = `{
	admin 127.0.0.1:{{.AdminPort}}
	auto_https off
	{{.GlobalOptions}}
	pg_session {
		database_url {{.DatabaseURL}}
		cleanup_interval {{or .CleanupInterval "1h"}}
		{{.AppOptions}}
	}
}
http://127.0.0.1:{{.Port}} {
	log {
		output stderr
		format json
	}
	pg_session {
		{{.HandlerOptions}}
	}
	{{if .Upstream}}reverse_proxy {{.Upstream}} {
		flush_interval -1
		{{.UpstreamOptions}}
	}{{else if .Root}}root * {{.Root}}
	file_server{{else}}respond "hello {http.auth.user.username}" 200{{end}}
}
`

// caddyServer is a running Caddy serving one site.
type caddyServer struct {
	*caddyproc.Server
	t    *testing.T
	site site
}

func freePort(t *testing.T) int { return caddyproc.FreePort(t) }

func renderCaddyfile(t *testing.T, s site) string {
	t.Helper()
	var b strings.Builder
	require.NoError(t, template.Must(template.New("").Parse(caddyfileTemplate)).Execute(&b, s))
	return b.String()
}

// startCaddy runs Caddy with s and waits until it answers; it is stopped when the test ends.
func startCaddy(t *testing.T, s site) *caddyServer {
	t.Helper()
	if s.Port == 0 {
		s.Port = freePort(t)
	}
	if s.AdminPort == 0 {
		s.AdminPort = freePort(t)
	}
	c := &caddyServer{t: t, site: s}
	c.Server = caddyproc.Start(t, caddyBinary, renderCaddyfile(t, s), c.url("/api/auth/me"), s.AdminPort)
	return c
}

// restart stops Caddy and starts it again with the same config.
func (c *caddyServer) restart() { c.Restart() }

// reload loads s as a new config through the admin API, as `caddy reload` does.
func (c *caddyServer) reload(s site) {
	c.t.Helper()
	s.Port, s.AdminPort = c.site.Port, c.site.AdminPort
	c.Reload(renderCaddyfile(c.t, s))
	c.site = s
}

func (c *caddyServer) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", c.site.Port, path)
}

// logs returns what Caddy has logged so far.
func (c *caddyServer) logs() string { return c.Logs() }

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see each 303.
type browser struct {
	t      *testing.T
	client *http.Client
	jar    *cookiejar.Jar
}

func newBrowser(t *testing.T) *browser {
	client, jar := webtest.NewBrowser(t, nil)
	return &browser{t: t, jar: jar, client: client}
}

// response is a finished response with its body read.
type response struct {
	*http.Response
	body string
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, body := webtest.Do(b.t, b.client, req)
	return response{resp, body}
}

func (b *browser) get(rawURL string, header ...string) response {
	b.t.Helper()
	return b.do(webtest.Request(b.t, http.MethodGet, rawURL, nil, header...))
}

// getAfterReload is get on a new connection just after a reload: the old
// config's server, stopping, may still take the connection and close it
// unanswered, and a browser then sends the request again, as this does
// until it is answered.
func (b *browser) getAfterReload(rawURL string, header ...string) response {
	b.t.Helper()
	b.client.CloseIdleConnections()
	var resp *http.Response
	require.Eventually(b.t, func() bool {
		var err error
		resp, err = b.client.Do(webtest.Request(b.t, http.MethodGet, rawURL, nil, header...))
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "GET %s after a reload was never answered", rawURL)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return response{resp, string(body)}
}

// getPage is a browser navigation: it accepts HTML.
func (b *browser) getPage(rawURL string) response {
	return b.get(rawURL, "Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
}

func (b *browser) postJSON(rawURL string, v any) response {
	b.t.Helper()
	return b.do(webtest.JSONRequest(b.t, http.MethodPost, rawURL, v))
}

func (b *browser) postForm(rawURL string, form url.Values) response {
	b.t.Helper()
	return b.do(webtest.FormRequest(b.t, rawURL, form))
}

// login logs in with JSON and fails the test unless it works.
func (b *browser) login(c *caddyServer, username, password string) {
	b.t.Helper()
	resp := b.postJSON(c.url("/api/auth/login"), map[string]string{"username": username, "password": password})
	require.Equal(b.t, http.StatusOK, resp.StatusCode, resp.body)
}

// cookie returns the session cookie the browser holds for c, or "".
func (b *browser) cookie(c *caddyServer) string {
	return webtest.SessionCookie(b.jar, c.url("/"), "session")
}

// database is a test's PostgreSQL database, with the store for setting up users.
type database struct {
	url   string
	pool  *pgxpool.Pool
	store *store.Store
}

// newDatabaseAt installs the schema, if it is not there yet, in the database
// at url, e.g. one on a server of the test's own (pgtest.NewServer).
func newDatabaseAt(t *testing.T, url string) *database {
	t.Helper()
	db := openDatabase(t, url)
	_, err := db.store.Migrate(context.Background())
	require.NoError(t, err)
	return db
}

// newDatabase creates a database of the test's own, with the schema
// installed: a copy of the one this test binary migrated, which is much
// quicker than migrating each test's.
func newDatabase(t *testing.T) *database {
	t.Helper()
	return openDatabase(t, migrated.NewDatabase(t))
}

// openDatabase opens the database at url as it is.
func openDatabase(t *testing.T, url string) *database {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := store.New(pool, store.Options{})
	require.NoError(t, err)
	return &database{url: url, pool: pool, store: s}
}

// addUser creates a user with a password.
func (db *database) addUser(t *testing.T, name, password string) *store.User {
	t.Helper()
	u, err := db.store.CreateUser(context.Background(), name, password, false)
	require.NoError(t, err)
	return u
}

func (db *database) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// send makes a request with an optional JSON body and header pairs.
func (b *browser) send(method, rawURL string, body any, header ...string) response {
	b.t.Helper()
	return b.do(webtest.JSONRequest(b.t, method, rawURL, body, header...))
}

// addAdmin creates a user with is_admin.
func (db *database) addAdmin(t *testing.T, name, password string) *store.User {
	t.Helper()
	u, err := db.store.CreateUser(context.Background(), name, password, true)
	require.NoError(t, err)
	return u
}

// sessionInDB logs u in straight in the database and returns the cookie
// value and the session's public handle.
func sessionInDB(t *testing.T, db *database, u *store.User) (token, handle string) {
	t.Helper()
	token, sess, err := db.store.CreateSession(context.Background(), store.SessionParams{User: *u, Lifetime: time.Hour, IP: "127.0.0.1"})
	require.NoError(t, err)
	return token, string(sess.Handle)
}

func sessionCookie(token string) string { return "session=" + token }

// retryAfter asserts that resp carries Retry-After as a positive number of
// seconds no longer than max, and returns it.
func retryAfter(t *testing.T, resp response, max int) int {
	t.Helper()
	n, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q is not a whole number of seconds", resp.Header.Get("Retry-After"))
	require.Positive(t, n, "Retry-After")
	require.LessOrEqual(t, n, max, "Retry-After")
	return n
}
