package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// connectMode opens a connection that runs its queries in the given mode, because most modes
// cannot work through a transaction pooler and each test says which one it relies on.
func connectMode(t *testing.T, connURL string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(connURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connecting to %s: %v", connURL, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func backendPID(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) int {
	t.Helper()
	var pid int
	if err := q.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatalf("reading pg_backend_pid(): %v", err)
	}
	return pid
}

func TestPgBouncerServesQueries(t *testing.T) {
	t.Parallel()
	dbURL := NewDatabase(t)
	b := NewPgBouncer(t, dbURL)

	direct, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pooled, err := url.Parse(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	if pooled.Hostname() != "127.0.0.1" || pooled.Port() == direct.Port() || pooled.Path != direct.Path ||
		pooled.User.Username() != direct.User.Username() || pooled.RawQuery != "sslmode=disable" {
		t.Fatalf("URL() = %q, want the database and user of %q on another port of 127.0.0.1", b.URL(), dbURL)
	}

	ctx := context.Background()
	if _, err := connect(t, dbURL).Exec(ctx, "CREATE TABLE notes (n int PRIMARY KEY)"); err != nil {
		t.Fatalf("creating a table directly: %v", err)
	}
	cfg, err := pgxpool.ParseConfig(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	// More clients than server connections, as with several app servers behind one pgbouncer.
	const clients = 3 * PgBouncerPoolSize
	cfg.MaxConns = clients
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			if _, err := pool.Exec(ctx, "INSERT INTO notes VALUES ($1)", i); err != nil {
				t.Errorf("inserting %d through pgbouncer: %v", i, err)
			}
		})
	}
	wg.Wait()
	var n int
	if err := connect(t, dbURL).QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&n); err != nil || n != clients {
		t.Fatalf("counting rows directly: got %d, %v; want %d, nil", n, err, clients)
	}

	pool2 := b.Pool(t)
	servers := 0
	for _, column := range []string{"sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"} {
		v, err := strconv.Atoi(pool2[column])
		if err != nil {
			t.Fatalf("SHOW POOLS %s = %q: %v", column, pool2[column], err)
		}
		servers += v
	}
	if servers < 1 || servers > PgBouncerPoolSize {
		t.Errorf("pgbouncer has %d server connections for %d clients, want 1 to %d", servers, clients, PgBouncerPoolSize)
	}
}

// TestPgBouncerPoolsTransactions shows transaction pooling at work: two client connections open
// at the same time use the same server process, which session pooling never does, and a client
// moves to another server process while a second client's transaction holds the first.
func TestPgBouncerPoolsTransactions(t *testing.T) {
	t.Parallel()
	b := NewPgBouncer(t, NewDatabase(t))
	if mode := b.Pool(t)["pool_mode"]; mode != "transaction" {
		t.Fatalf("SHOW POOLS pool_mode = %q, want transaction", mode)
	}

	// Start-up left exactly one idle server connection, so both clients are first given that one.
	ctx := context.Background()
	a := connectMode(t, b.URL(), pgx.QueryExecModeExec)
	c := connectMode(t, b.URL(), pgx.QueryExecModeExec)
	first := backendPID(t, a)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if held := backendPID(t, tx); held != first {
		t.Fatalf("second client got server process %d, want %d, the idle one the first client used", held, first)
	}
	if moved := backendPID(t, a); moved == first {
		t.Fatalf("first client still on server process %d while another client's transaction holds it", first)
	}
	pool := b.Pool(t)
	if pool["sv_active"] != "1" || pool["cl_active"] != "2" {
		t.Errorf("SHOW POOLS during the transaction: sv_active=%s cl_active=%s, want 1 and 2", pool["sv_active"], pool["cl_active"])
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	var stats map[string]string
	for _, row := range b.Console(t, "SHOW STATS") {
		if row["database"] == b.database {
			stats = row
		}
	}
	if n, err := strconv.Atoi(stats["total_xact_count"]); err != nil || n < 3 {
		t.Errorf("SHOW STATS total_xact_count = %q, want at least the 3 transactions above", stats["total_xact_count"])
	}
	config := map[string]string{}
	for _, row := range b.Console(t, "SHOW CONFIG") {
		config[row["key"]] = row["value"]
	}
	if config["default_pool_size"] != strconv.Itoa(PgBouncerPoolSize) {
		t.Errorf("SHOW CONFIG default_pool_size = %q, want %d", config["default_pool_size"], PgBouncerPoolSize)
	}
	if _, err := b.console("SHOW NO_SUCH_THING"); err == nil {
		t.Error("an unknown console command succeeded")
	}
}

// TestPgBouncerBreaksNamedPreparedStatements pins down why the plugin may not use pgx's default
// mode through pgbouncer: the second client to prepare a statement on a shared server collides.
func TestPgBouncerBreaksNamedPreparedStatements(t *testing.T) {
	t.Parallel()
	b := NewPgBouncer(t, NewDatabase(t))
	ctx := context.Background()
	a, c := connect(t, b.URL()), connect(t, b.URL()) // pgx defaults: QueryExecModeCacheStatement
	const query = "SELECT $1::int + 1"
	var n int
	if err := a.QueryRow(ctx, query, 1).Scan(&n); err != nil {
		t.Fatalf("first client: %v", err)
	}
	err := c.QueryRow(ctx, query, 1).Scan(&n)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.DuplicatePreparedStatement {
		t.Fatalf("second client on the same server connection: %v; want duplicate_prepared_statement (42P05)", err)
	}
}

// TestPgBouncerQueryExecModes runs each pgx query mode from more clients than server connections,
// as app servers do, to show which modes the plugin can use through a transaction pooler.
func TestPgBouncerQueryExecModes(t *testing.T) {
	t.Parallel()
	b := NewPgBouncer(t, NewDatabase(t))
	for _, tc := range []struct {
		mode pgx.QueryExecMode
		// works: no errors and no wrong results. Otherwise the mode fails through pgbouncer; the
		// test only insists on it for CacheStatement, where 16 clients preparing on 4 servers must
		// collide, and logs the rest.
		works, mustFail bool
	}{
		{pgx.QueryExecModeCacheStatement, false, true},
		// Prepare and Bind of the unnamed statement go in two round trips, and pgbouncer may hand
		// the server to another client in between, whose statement then runs with these arguments.
		{pgx.QueryExecModeDescribeExec, false, false},
		{pgx.QueryExecModeCacheDescribe, true, false},
		{pgx.QueryExecModeExec, true, false},
		{pgx.QueryExecModeSimpleProtocol, true, false},
	} {
		t.Run(strings.ReplaceAll(tc.mode.String(), " ", "_"), func(t *testing.T) {
			errs, wrong := runMixedQueries(t, b.URL(), tc.mode, 4*PgBouncerPoolSize, 30)
			failures := 0
			for _, n := range errs {
				failures += n
			}
			t.Logf("%v: %d errors, %d wrong results", tc.mode, failures, len(wrong))
			for msg, n := range errs {
				t.Logf("%5d × %s", n, msg)
			}
			for _, w := range wrong[:min(3, len(wrong))] {
				t.Logf("wrong result: %s", w)
			}
			switch {
			case tc.works && failures+len(wrong) > 0:
				t.Errorf("%v failed through pgbouncer", tc.mode)
			case tc.mustFail && failures == 0:
				t.Errorf("%v worked through pgbouncer, want prepared statement collisions", tc.mode)
			}
		})
	}
}

// runMixedQueries has each of clients connections run queries of two shapes in turn and checks
// each answer, since a mode that mixes up statements can return a wrong result without an error.
func runMixedQueries(t *testing.T, connURL string, mode pgx.QueryExecMode, clients, rounds int) (errs map[string]int, wrong []string) {
	t.Helper()
	conns := make([]*pgx.Conn, clients)
	for i := range conns {
		conns[i] = connectMode(t, connURL, mode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs = map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for client, conn := range conns {
		wg.Go(func() {
			for round := range rounds {
				// Both shapes take one text parameter, so running the other client's statement
				// succeeds and only the answer shows the mix-up.
				shape := [...]string{"user-", "session-"}[round%2]
				want := shape + strconv.Itoa(client)
				var got string
				err := conn.QueryRow(ctx, "SELECT '"+shape+"' || $1::text", strconv.Itoa(client)).Scan(&got)
				mu.Lock()
				switch {
				case err != nil:
					errs[err.Error()]++
				case got != want:
					wrong = append(wrong, fmt.Sprintf("asked for %q, got %q", want, got))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errs, wrong
}

func TestPgBouncerWatchdogStopsAnOrphan(t *testing.T) {
	t.Parallel()
	b, err := startPgBouncer(NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	p := b.proc
	t.Cleanup(func() {
		if err := errors.Join(b.terminate(), b.removeFolder()); err != nil {
			t.Error(err)
		}
	})
	// Closing the pipe without saying "done" is what the kernel does when the test process dies.
	_ = b.watchdogIn.Close()
	if err := b.watchdog.Wait(); err != nil {
		t.Fatalf("watchdog: %v", err)
	}
	b.watchdog = nil
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("pgbouncer still runs 10s after the watchdog stopped it")
	}
	if _, err := os.Stat(b.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pgbouncer folder %s still there after the watchdog ran: %v", b.dir, err)
	}
}

func TestPgBouncerReportsABusyPort(t *testing.T) {
	t.Parallel()
	dbURL := NewDatabase(t)
	b, err := startPgBouncer(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := errors.Join(b.terminate(), b.removeFolder()); err != nil {
			t.Error(err)
		}
	})
	if err := b.terminate(); err != nil {
		t.Fatal(err)
	}
	// A port somebody else holds must be reported as such, so startPgBouncer tries another one.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	backend, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	runAs, err := serverAccount()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := findPgBouncer()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.writeConfig(backend, busy, runAs); err != nil {
		t.Fatal(err)
	}
	inUse, err := b.start(bin, busy, runAs)
	if err == nil || !inUse {
		t.Fatalf("starting on busy port %d: portInUse=%v, err=%v; want true and an error", busy, inUse, err)
	}
	if !strings.Contains(err.Error(), "last lines of the pgbouncer log") {
		t.Errorf("start error does not include the pgbouncer log: %v", err)
	}
}

func TestFindPgBouncer(t *testing.T) {
	// Not parallel: it changes PATH.
	t.Setenv("PATH", "")
	path, err := findPgBouncer()
	if err != nil {
		if !errors.Is(err, errNoPgBouncer) || strings.Contains(err.Error(), "\n") ||
			!strings.Contains(err.Error(), "apt-get install pgbouncer") {
			t.Fatalf("findPgBouncer: %v; want errNoPgBouncer in one line naming the package", err)
		}
		return
	}
	if path != "/usr/sbin/pgbouncer" {
		t.Errorf("findPgBouncer() = %q with an empty PATH, want /usr/sbin/pgbouncer", path)
	}
}
