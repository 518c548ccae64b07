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
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// binaries are the PostgreSQL programs needed to create and run a throwaway cluster.
type binaries struct {
	initdb, pgCtl string
}

// findBinaries looks on PATH first, so a developer can choose a version, and then under
// /usr/lib/postgresql/*/bin, where Debian and Ubuntu install the server without putting it on PATH.
func findBinaries() (binaries, error) {
	initdb, err1 := exec.LookPath("initdb")
	pgCtl, err2 := exec.LookPath("pg_ctl")
	if err1 == nil && err2 == nil {
		return binaries{initdb: initdb, pgCtl: pgCtl}, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var best binaries
	var bestVersion []int
	for _, dir := range dirs {
		version, ok := parseVersion(filepath.Base(filepath.Dir(dir)))
		if !ok || (bestVersion != nil && slices.Compare(version, bestVersion) <= 0) {
			continue
		}
		b := binaries{initdb: filepath.Join(dir, "initdb"), pgCtl: filepath.Join(dir, "pg_ctl")}
		if isExecutable(b.initdb) && isExecutable(b.pgCtl) {
			best, bestVersion = b, version
		}
	}
	if bestVersion == nil {
		return binaries{}, errNoBinaries
	}
	return best, nil
}

// parseVersion turns a folder name such as "15" or "9.6" into numbers, so 15 sorts above 9.6.
func parseVersion(s string) ([]int, bool) {
	var version []int
	for part := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, false
		}
		version = append(version, n)
	}
	return version, true
}

// isExecutable reports whether path is a regular file someone may execute, so a stray folder or
// data file is not mistaken for a program.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// account is the OS user the server programs run as when the tests run as root, because
// PostgreSQL refuses to run as root.
type account struct {
	name     string
	uid, gid int
	runuser  string
}

// serverAccount returns nil when the tests do not run as root, as the server can then run as the
// current user, and otherwise the postgres user.
func serverAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	const name = "postgres"
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, so PostgreSQL must run as the %s OS user: looking it up: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtest: parsing the ids of the %s OS user: %w", name, err)
	}
	runuser, err := exec.LookPath("runuser")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, so PostgreSQL must run as the %s OS user: finding runuser: %w", name, err)
	}
	return &account{name: name, uid: uid, gid: gid, runuser: runuser}, nil
}

// cluster is one throwaway PostgreSQL cluster: a data folder, its log and its socket, all in one
// temporary folder so removing that folder removes everything.
type cluster struct {
	bin     binaries
	runAs   *account // nil: run the server programs as the current user
	dir     string   // the temporary folder
	dataDir string
	logPath string
	port    int  // 0 until first started, then fixed so URLs outlive a restart
	running bool // guarded by Server.mu, or by shared.once for the shared cluster

	watchdog   *exec.Cmd
	watchdogIn io.WriteCloser
}

// newCluster creates and initialises a cluster without starting it; on failure it removes what it
// created, so callers only clean up clusters they got.
func newCluster() (c *cluster, err error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	runAs, err := serverAccount()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: creating a temporary folder for PostgreSQL: %w", err)
	}
	c = &cluster{
		bin:     bin,
		runAs:   runAs,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "postgres.log"),
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.destroy())
		}
	}()
	if runAs != nil {
		if err := os.Chown(dir, runAs.uid, runAs.gid); err != nil {
			return nil, fmt.Errorf("pgtest: giving %s to the %s OS user: %w", dir, runAs.name, err)
		}
	}
	if err := c.startWatchdog(); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), initdbTimeout)
	defer cancel()
	// Trust authentication and no locale keep setup simple and byte-order collation predictable;
	// --no-sync skips fsync because the cluster is thrown away anyway.
	out, err := c.command(ctx, bin.initdb, "-D", c.dataDir, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pgtest: initialising a PostgreSQL cluster with %s: %w\n%s", bin.initdb, err, strings.TrimSpace(string(out)))
	}

	// A socket path longer than sun_path (108 bytes) would stop the server from starting, and
	// every client here uses TCP, so a long TMPDIR just gets no socket.
	socketDir := dir
	if len(dir)+len("/.s.PGSQL.65535") >= 100 {
		socketDir = ""
	}
	conf := fmt.Sprintf(`
# Added by pgtest: a throwaway cluster trades durability for speed, listens only on the loopback
# address and keeps its socket in its own folder, so it never clashes with an installed server.
listen_addresses = '%s'
unix_socket_directories = '%s'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
`, host, strings.ReplaceAll(socketDir, "'", "''"))
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("pgtest: opening postgresql.conf: %w", err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("pgtest: writing postgresql.conf: %w", err)
	}
	return c, nil
}

// command runs a program as the cluster's OS user, from the cluster's folder, because the postgres
// user may not be allowed into the current directory and the programs complain about that.
func (c *cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if c.runAs != nil {
		args = append([]string{"-u", c.runAs.name, "--", name}, args...)
		name = c.runAs.runuser
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dir
	return cmd
}

// watchdogScript waits for EOF on stdin, which happens when the test process exits for any
// reason, and then stops the cluster and removes its folder unless told "done" first by destroy.
const watchdogScript = `read -r line
[ "$line" = done ] && exit 0
"$1" stop -D "$2" -m immediate >/dev/null 2>&1
rm -rf "$3"`

// startWatchdog starts the shell that cleans up after a test process that died without doing so,
// because pg_ctl detaches the server from the test process and it would run on forever.
func (c *cluster) startWatchdog() error {
	cmd := c.command(context.Background(), "/bin/sh", "-c", watchdogScript, "pgtest-watchdog", c.bin.pgCtl, c.dataDir, c.dir)
	// Its own process group keeps a Ctrl-C meant for go test from killing it before it can clean up;
	// stdout and stderr stay /dev/null so go test never waits for it to close them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("pgtest: creating the watchdog's stdin pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		_ = in.Close()
		return fmt.Errorf("pgtest: starting the watchdog: %w", err)
	}
	c.watchdog, c.watchdogIn = cmd, in
	return nil
}

// url returns the superuser URL of a database on the cluster; sslmode=disable because the
// cluster has no certificate and pgx would otherwise try TLS first.
func (c *cluster) url(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort(host, strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// startOnFreePort starts the cluster on a port nobody listens on, trying another port when some
// other process grabbed the chosen one first, as parallel test binaries do.
func (c *cluster) startOnFreePort() error {
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		portInUse, err := c.start(port)
		if err == nil || !portInUse || attempt == startAttempts {
			return err
		}
	}
}

// freePort asks the kernel for a free port by listening on port 0; the port may be taken again
// before the server binds it, which startOnFreePort handles.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free TCP port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start starts the server on port and waits until it accepts connections; portInUse tells
// startOnFreePort that trying another port may help.
func (c *cluster) start(port int) (portInUse bool, err error) {
	logStart := fileSize(c.logPath)
	ctx, cancel := context.WithTimeout(context.Background(), pgCtlTimeout)
	defer cancel()
	out, err := c.command(ctx, c.bin.pgCtl, "start", "-w", "-t", "60", "-D", c.dataDir,
		"-l", c.logPath, "-o", "-p "+strconv.Itoa(port)).CombinedOutput()
	if err != nil {
		log := c.logSince(logStart)
		return strings.Contains(log, "Address already in use"),
			fmt.Errorf("pgtest: starting PostgreSQL on %s:%d: %w\n%s\nlast lines of %s:\n%s",
				host, port, err, strings.TrimSpace(string(out)), c.logPath, lastLines(log, 20))
	}
	if c.port != port { // only the first start picks the port; Port reads it without a lock
		c.port = port
	}
	c.running = true
	if err := c.waitReady(); err != nil {
		return false, fmt.Errorf("%w\nlast lines of %s:\n%s", err, c.logPath, lastLines(c.logSince(logStart), 20))
	}
	return false, nil
}

// waitReady polls with real connections rather than sleeping, so tests start as soon as the server
// can serve them and a slow machine only makes them wait longer.
func (c *cluster) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.url("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: waiting for PostgreSQL on %s:%d to accept connections: %w", host, c.port, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop stops the server with the given pg_ctl shutdown mode and waits until it has stopped, so the
// port and the data folder are free afterwards.
func (c *cluster) stop(mode string) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgCtlTimeout)
	defer cancel()
	out, err := c.command(ctx, c.bin.pgCtl, "stop", "-w", "-t", "60", "-D", c.dataDir, "-m", mode).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: stopping PostgreSQL on %s:%d: %w\n%s", host, c.port, err, strings.TrimSpace(string(out)))
	}
	c.running = false
	return nil
}

// destroy stops the server if it may be running, dismisses the watchdog and removes the folder; it
// checks postmaster.pid rather than c.running so a server whose start timed out is stopped too.
func (c *cluster) destroy() error {
	var errs []error
	if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); err == nil {
		// Immediate mode skips the shutdown checkpoint, as the data is about to be deleted.
		if err := c.stop("immediate"); err != nil {
			errs = append(errs, err)
		}
	}
	if c.watchdog != nil {
		if err := dismissWatchdog(c.watchdog, c.watchdogIn); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: waiting for the watchdog to exit: %w", err))
		}
		c.watchdog = nil
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("pgtest: removing the PostgreSQL folder: %w", err))
	}
	return errors.Join(errs...)
}

// dismissWatchdog tells a watchdog its server was cleaned up properly, so it
// exits without acting, and waits for it.
func dismissWatchdog(cmd *exec.Cmd, in io.WriteCloser) error {
	_, _ = io.WriteString(in, "done\n")
	_ = in.Close()
	return cmd.Wait()
}

// fileSize returns the size of path, or 0 if it does not exist yet, to mark where a start
// attempt's log lines begin.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what the server logged from offset on, so an error shows this attempt's lines
// and not those of earlier starts.
func (c *cluster) logSince(offset int64) string { return readLogSince(c.logPath, offset) }

// readLogSince returns what a server logged to path from offset on; a
// shorter file was started again, and is read from its start.
func readLogSince(path string, offset int64) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(reading the log: %v)", err)
	}
	if offset > int64(len(data)) {
		offset = 0
	}
	return string(data[offset:])
}

// lastLines returns at most n trailing lines of s, because the end of the log says why the server
// did not start.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
