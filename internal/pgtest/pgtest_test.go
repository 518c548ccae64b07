package pgtest

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// connect opens a connection that is closed when the test ends, so tests need no defers.
func connect(t *testing.T, connURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		t.Fatalf("connecting to %s: %v", connURL, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// adminURL returns the URL NewDatabase creates databases through, so tests can look at the server
// from outside the databases they were given.
func adminURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv(envDatabaseURL); u != "" {
		return u
	}
	c, err := sharedCluster()
	if err != nil {
		t.Fatal(err)
	}
	return c.url("postgres")
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	var exists bool
	err := connect(t, adminURL(t)).QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		t.Fatalf("looking for database %s: %v", name, err)
	}
	return exists
}

func TestNewDatabaseIsEmptyAndUsable(t *testing.T) {
	t.Parallel()
	dbURL := NewDatabase(t)
	if !strings.HasPrefix(dbURL, "postgres://") {
		t.Fatalf("NewDatabase returned %q, want a postgres:// URL", dbURL)
	}
	conn := connect(t, dbURL)
	ctx := context.Background()

	var name string
	var tables int
	err := conn.QueryRow(ctx, `SELECT current_database(),
		(SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema'))`).Scan(&name, &tables)
	if err != nil {
		t.Fatalf("inspecting the new database: %v", err)
	}
	if !strings.HasPrefix(name, "t_testnewdatabaseisemptyandusable_") {
		t.Errorf("database name %q does not start with the sanitised test name", name)
	}
	if tables != 0 {
		t.Errorf("new database has %d tables, want 0", tables)
	}

	if _, err := conn.Exec(ctx, "CREATE TABLE sessions (id text PRIMARY KEY, data bytea)"); err != nil {
		t.Fatalf("creating a table: %v", err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO sessions VALUES ('a', '\\x01')"); err != nil {
		t.Fatalf("inserting: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM sessions").Scan(&n); err != nil || n != 1 {
		t.Fatalf("counting rows: got %d, %v; want 1, nil", n, err)
	}
}

func TestNewDatabaseIsolation(t *testing.T) {
	t.Parallel()
	urlA, urlB := NewDatabase(t), NewDatabase(t)
	if urlA == urlB {
		t.Fatalf("two NewDatabase calls returned the same URL %q", urlA)
	}
	ctx := context.Background()
	a, b := connect(t, urlA), connect(t, urlB)
	if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatalf("creating a table in database A: %v", err)
	}
	var found *string
	if err := b.QueryRow(ctx, "SELECT to_regclass('only_in_a')::text").Scan(&found); err != nil {
		t.Fatalf("looking for the table in database B: %v", err)
	}
	if found != nil {
		t.Errorf("table created in database A is visible in database B as %s", *found)
	}
}

func TestNewDatabaseIsDroppedWhenTheTestEnds(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("inner", func(t *testing.T) {
		u, err := url.Parse(NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		name = strings.TrimPrefix(u.Path, "/")
		// An open connection must not stop the drop, hence WITH (FORCE).
		connect(t, u.String())
		if !databaseExists(t, name) {
			t.Fatalf("database %s does not exist during the test", name)
		}
	})
	if databaseExists(t, name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestServerStopAndStart(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	port := s.Port()
	if s.Host() != "127.0.0.1" || port <= 0 {
		t.Fatalf("server at %s:%d, want 127.0.0.1 and a port", s.Host(), port)
	}
	dbURL := s.NewDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if want := s.URL(strings.TrimPrefix(u.Path, "/")); dbURL != want {
		t.Fatalf("NewDatabase returned %q, want %q", dbURL, want)
	}
	if want := "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/x?sslmode=disable"; s.URL("x") != want {
		t.Fatalf("URL(\"x\") = %q, want %q", s.URL("x"), want)
	}

	ctx := context.Background()
	conn := connect(t, dbURL)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"); err != nil {
		t.Fatalf("writing data: %v", err)
	}

	s.Stop(t)
	if err := conn.Ping(ctx); err == nil {
		t.Error("a connection opened before Stop still works")
	}
	shortCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c, err := pgx.Connect(shortCtx, dbURL); err == nil {
		_ = c.Close(ctx)
		t.Fatal("connecting to a stopped server succeeded")
	}

	// A port somebody else holds must be reported as such, so startOnFreePort tries another one.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busy := l.Addr().(*net.TCPAddr).Port
	inUse, err := s.c.start(busy)
	_ = l.Close()
	if err == nil || !inUse {
		t.Fatalf("starting on busy port %d: portInUse=%v, err=%v; want true and an error", busy, inUse, err)
	}
	if !strings.Contains(err.Error(), "last lines of") {
		t.Errorf("start error does not include the server log: %v", err)
	}

	s.Start(t)
	if s.Port() != port {
		t.Fatalf("port changed from %d to %d across Stop and Start", port, s.Port())
	}
	var v string
	if err := connect(t, dbURL).QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("reading data after restart: got %q, %v; want \"still here\"", v, err)
	}

	// Stopping and starting twice in a row is harmless, and the test ends with the server stopped,
	// which must not make dropping the database at cleanup fail.
	s.Start(t)
	s.Stop(t)
	s.Stop(t)
}

func TestWatchdogCleansUpAfterADeadTestProcess(t *testing.T) {
	t.Parallel()
	c, err := newCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.destroy(); err != nil {
			t.Error(err)
		}
	})
	if err := c.startOnFreePort(); err != nil {
		t.Fatal(err)
	}
	// Closing the pipe without saying "done" is what the kernel does when the test process dies.
	_ = c.watchdogIn.Close()
	if err := c.watchdog.Wait(); err != nil {
		t.Fatalf("watchdog: %v", err)
	}
	c.watchdog = nil
	if _, err := os.Stat(c.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster folder %s still there after the watchdog ran: %v", c.dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, c.url("postgres")); err == nil {
		_ = conn.Close(ctx)
		t.Error("the server still accepts connections after the watchdog ran")
	}
}

func TestDatabaseName(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^t_[a-z0-9_]*_[0-9a-f]{12}$`)
	for _, testName := range []string{
		"TestX",
		"TestServer/sub_case#01",
		"Test/ÄÖÜ weird \"quotes\" and 'more'",
		strings.Repeat("TestVeryLongName", 10),
		"",
	} {
		a, b := databaseName(testName), databaseName(testName)
		if !valid.MatchString(a) || len(a) > 63 {
			t.Errorf("databaseName(%q) = %q, not a valid unquoted identifier of at most 63 bytes", testName, a)
		}
		if a == b {
			t.Errorf("databaseName(%q) returned %q twice", testName, a)
		}
	}
	if got := databaseName("TestServer/sub_case#01"); !strings.HasPrefix(got, "t_testserver_sub_case_01_") {
		t.Errorf("databaseName sanitised to %q", got)
	}
}

func TestFindBinaries(t *testing.T) {
	// Not parallel: it changes PATH.
	t.Setenv("PATH", "")
	bin, err := findBinaries()
	if err != nil {
		// Only meaningful where the server binaries are installed under /usr/lib/postgresql.
		if !errors.Is(err, errNoBinaries) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("findBinaries: %v; want errNoBinaries in one line", err)
		}
		return
	}
	if !strings.HasPrefix(bin.initdb, "/usr/lib/postgresql/") || !strings.HasSuffix(bin.pgCtl, "/bin/pg_ctl") {
		t.Errorf("findBinaries() = %+v, want binaries under /usr/lib/postgresql/*/bin", bin)
	}
	if v, ok := parseVersion("9.6"); !ok || len(v) != 2 {
		t.Errorf("parseVersion(\"9.6\") = %v, %v", v, ok)
	}
}
