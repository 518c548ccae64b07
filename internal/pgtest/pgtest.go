// Package pgtest gives tests a real, empty PostgreSQL database, so the session store is tested
// against the server it runs on in production rather than against a fake.
//
// Use it from a package's tests like this:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		url := pgtest.NewDatabase(t) // postgres://... of a new, empty database
//		...
//	}
//
// NewDatabase uses the server named by the PGSESSION_TEST_DATABASE_URL environment variable when it
// is set (a postgres:// URL of a role allowed to create databases); otherwise it starts one
// throwaway cluster per test binary from the PostgreSQL server binaries (initdb, pg_ctl) found on
// PATH or under /usr/lib/postgresql/*/bin. NewServer starts a cluster of the test's own, which the
// test may stop and start again to see what an outage does.
//
// NewTemplate sets up a database once per test binary (running every migration, say) and copies it
// for each test that asks (CREATE DATABASE ... TEMPLATE), which is much quicker than setting up every
// test's database from empty; see the migrated package for the one with the schema installed.
//
// PostgreSQL refuses to run as root, so when the tests run as root the server programs are run as
// the postgres OS user through runuser, and the cluster's temporary folder is given to that user.
//
// A throwaway cluster is stopped and its folder removed when the test (NewServer) or the test
// binary (Main) ends. If the test process dies without cleaning up (a panic, a -timeout, a kill
// signal), a small watchdog shell started next to each cluster notices that its stdin pipe from the
// test process was closed, stops the cluster with pg_ctl stop -m immediate and removes its folder,
// so no postgres processes or temporary folders are left behind; the same happens to the shared
// cluster of a test binary whose TestMain forgot to call Main. Only a killed watchdog can leave an
// orphan, which then has to be stopped by hand (pg_ctl stop -D /tmp/pgtest-*/data).
//
// NewPgBouncer puts a real PgBouncer (apt-get install pgbouncer) in transaction pooling mode in
// front of such a database, as operators run it in front of many app servers, so tests can prove
// the code works through it:
//
//	dbURL := pgtest.NewDatabase(t)     // direct, e.g. for LISTEN
//	b := pgtest.NewPgBouncer(t, dbURL) // stopped when the test ends
//	pool, err := pgxpool.New(ctx, b.URL()+"&default_query_exec_mode=exec") // the same database through pgbouncer
//	b.Pool(t)["sv_active"]             // a column of SHOW POOLS; b.Console(t, "SHOW STATS") for the rest
//
// It opens at most PgBouncerPoolSize (4) server connections, so a few clients already take turns
// on them. Through it, pgx's default QueryExecModeCacheStatement fails on prepared statements that
// already exist or do not exist, and QueryExecModeDescribeExec may silently run another client's
// statement; QueryExecModeExec, QueryExecModeSimpleProtocol and QueryExecModeCacheDescribe work.
// pgbouncer runs as the postgres OS user when the tests run as root, and a watchdog like the
// clusters' stops it and removes its folder if the test process dies.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// envDatabaseURL names the variable that points NewDatabase at an existing server, so tests can run
// where the PostgreSQL server binaries are not installed.
const envDatabaseURL = "PGSESSION_TEST_DATABASE_URL"

// host is the only address the throwaway clusters listen on, so they are never reachable from
// other machines.
const host = "127.0.0.1"

// Timeouts are generous because a loaded CI machine running many test binaries at once can be slow,
// but bounded so a broken server fails the test instead of hanging it.
const (
	initdbTimeout = 2 * time.Minute
	pgCtlTimeout  = 90 * time.Second // pg_ctl itself gives up after 60 s (-t 60)
	readyTimeout  = 30 * time.Second
	queryTimeout  = 30 * time.Second
)

// startAttempts bounds the retries when another process takes the free port found for a cluster
// between finding it and the server binding it.
const startAttempts = 5

// errNoBinaries is one line on purpose, so the reason a test failed is obvious in go test output.
var errNoBinaries = errors.New("pgtest: PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin; install them with: apt-get install postgresql (or set " + envDatabaseURL + ")")

// shared is the cluster NewDatabase uses when PGSESSION_TEST_DATABASE_URL is unset; it is started
// at most once per test binary because initdb takes about a second.
var shared struct {
	once sync.Once
	c    *cluster
	err  error
}

// Main runs the package's tests and then stops the shared server, if one was started; use it as
// func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main without the exit, for a TestMain that has more to clean up; it returns the exit code.
func Run(m *testing.M) int {
	code := m.Run()
	if err := dropTemplates(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	// A no-op Do waits for a start still in progress and stops later NewDatabase calls from
	// starting a server nobody would stop.
	shared.once.Do(func() {})
	if shared.c != nil {
		if err := shared.c.destroy(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// NewDatabase returns the connection URL (postgres://...) of a new, empty database, dropped (WITH (FORCE)) when the test ends.
// If PGSESSION_TEST_DATABASE_URL is set it creates that database on that server; otherwise on a shared throwaway cluster that it starts once per test binary (sync.Once) and Main stops.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	adminURL, err := serverURL()
	if err != nil {
		tb.Fatal(err)
	}
	dbURL, drop := createDatabase(tb, adminURL, "")
	tb.Cleanup(func() {
		if err := drop(); err != nil {
			tb.Error(err)
		}
	})
	return dbURL
}

// sharedCluster starts the shared cluster on first use, so test binaries that never ask for a
// database never pay for one.
func sharedCluster() (*cluster, error) {
	shared.once.Do(func() {
		c, err := newCluster()
		if err == nil {
			if err = c.startOnFreePort(); err != nil {
				err = errors.Join(err, c.destroy())
			}
		}
		shared.c, shared.err = c, err
		if err != nil {
			shared.c = nil
		}
	})
	if shared.c == nil && shared.err == nil {
		return nil, errors.New("pgtest: the shared server was already stopped by pgtest.Main")
	}
	return shared.c, shared.err
}

// Server is a throwaway PostgreSQL cluster a test controls on its own, e.g. to stop it and see what a database outage does.
type Server struct {
	c *cluster
	// mu serialises Stop, Start and the dropping of databases, so a drop never races a shutdown.
	mu sync.Mutex
}

// NewServer initialises and starts a cluster of the test's own; it is stopped and its folder
// removed in tb.Cleanup, so the test needs no teardown of its own.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	c, err := newCluster()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{c: c}
	tb.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := c.destroy(); err != nil {
			tb.Error(err)
		}
	})
	if err := c.startOnFreePort(); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Host returns the address the server listens on, "127.0.0.1", for tests that build their own
// connection strings.
func (s *Server) Host() string { return host }

// Port returns the TCP port the server listens on; it stays the same across Stop and Start, so
// URLs handed out before an outage work again after it.
func (s *Server) Port() int { return s.c.port }

// URL returns postgres://postgres@127.0.0.1:PORT/database?sslmode=disable, the superuser URL of
// the named database, since trust authentication needs no password.
func (s *Server) URL(database string) string { return s.c.url(database) }

// NewDatabase creates a database with a unique name on the server and returns its URL; it is
// dropped when the test ends unless the server is stopped then, as a stopped server's databases
// go away with its folder anyway.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	dbURL, drop := createDatabase(tb, s.c.url("postgres"), "")
	tb.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.c.running {
			return
		}
		if err := drop(); err != nil {
			tb.Error(err)
		}
	})
	return dbURL
}

// Stop shuts the server down with pg_ctl stop -m fast and waits until it has stopped, so the test
// can observe a database outage; stopping a stopped server does nothing.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.c.running {
		return
	}
	if err := s.c.stop("fast"); err != nil {
		tb.Fatal(err)
	}
}

// Start starts a stopped server again on the same port with the same data and returns once it
// accepts connections, so the test can observe recovery from an outage; starting a running server
// does nothing.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c.running {
		return
	}
	if _, err := s.c.start(s.c.port); err != nil {
		tb.Fatal(err)
	}
}

// createDatabase creates a database named after the test on the server adminURL points at, as a
// copy of the template database if one is named and otherwise empty, and returns its URL and a
// function that drops it, so callers decide when dropping makes sense.
func createDatabase(tb testing.TB, adminURL, template string) (dbURL string, drop func() error) {
	tb.Helper()
	name := databaseName(tb.Name())
	dbURL, err := withDatabase(adminURL, name)
	if err != nil {
		tb.Fatal(err)
	}
	ident := pgx.Identifier{name}.Sanitize()
	create := "CREATE DATABASE " + ident
	if template != "" {
		create += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if err := execSQL(adminURL, create); err != nil {
		tb.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	return dbURL, func() error {
		if err := execSQL(adminURL, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("pgtest: dropping database %s: %w", name, err)
		}
		return nil
	}
}

// execSQL runs one statement on a connection of its own, because CREATE and DROP DATABASE cannot
// run inside a transaction and are too rare to be worth a pool.
func execSQL(connURL, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return err
	}
	return nil
}

// databaseName returns t_<sanitised test name>_<random hex>: the test name helps find a leftover
// database's owner, and the random part keeps parallel tests and repeated runs apart.
func databaseName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "_"):
			b.WriteByte('_')
		}
	}
	// 2 + 40 + 1 + 12 bytes stays below PostgreSQL's 63-byte identifier limit.
	s := strings.TrimSuffix(b.String(), "_")
	if len(s) > 40 {
		s = strings.TrimSuffix(s[:40], "_")
	}
	var random [6]byte
	_, _ = rand.Read(random[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return "t_" + s + "_" + hex.EncodeToString(random[:])
}

// withDatabase returns adminURL pointing at the named database instead, keeping its host, user,
// password and options, so the new database is reached the same way as the server.
func withDatabase(adminURL, database string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return "", fmt.Errorf("pgtest: %s must be a postgres://user[:password]@host[:port]/database URL", envDatabaseURL)
	}
	u.Path, u.RawPath = "/"+database, ""
	return u.String(), nil
}
