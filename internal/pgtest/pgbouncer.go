package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgBouncerPoolSize is pgbouncer's default_pool_size: the most server connections it opens to the
// database. It is small so that a handful of concurrent clients already share server connections,
// which is what transaction pooling in production looks like.
const PgBouncerPoolSize = 4

// pgBouncerStopTimeout bounds the wait for pgbouncer to exit after SIGTERM before it is killed, so a
// stuck pooler cannot hang the test's cleanup.
const pgBouncerStopTimeout = 10 * time.Second

// pgBouncerLogLines is how much of pgbouncer's log a failed test shows: enough to see connection
// and pooling errors without drowning the test output.
const pgBouncerLogLines = 200

// errNoPgBouncer is one line on purpose, so the reason a test failed is obvious in go test output.
var errNoPgBouncer = errors.New("pgtest: pgbouncer not found on PATH or in /usr/sbin; install it with: apt-get install pgbouncer")

// PgBouncer is a real pgbouncer in transaction pooling mode in front of one database, as operators
// run it in front of many app servers, so tests can prove the plugin works through it.
type PgBouncer struct {
	url      string // the database through pgbouncer
	adminURL string // pgbouncer's admin console
	database string
	dir      string // temporary folder with the configuration and the log
	logPath  string
	proc     *pgBouncerProcess // the running pgbouncer, nil when none is

	watchdog   *exec.Cmd
	watchdogIn io.WriteCloser
}

// pgBouncerProcess is one pgbouncer run; exited is closed once it has exited and err is set, so
// start-up can notice a pgbouncer that gave up instead of polling until the timeout.
type pgBouncerProcess struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// NewPgBouncer starts pgbouncer in transaction pooling mode on a free port of 127.0.0.1 in front of
// the database backendURL points at (a postgres:// URL as NewDatabase returns) and returns once it
// serves queries. It is stopped in tb.Cleanup, and its log is shown if the test failed.
func NewPgBouncer(tb testing.TB, backendURL string) *PgBouncer {
	tb.Helper()
	b, err := startPgBouncer(backendURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stopErr := b.stop()
		if stopErr != nil {
			tb.Error(stopErr)
		}
		if tb.Failed() {
			tb.Logf("pgtest: last lines of the pgbouncer log:\n%s", lastLines(b.logSince(0), pgBouncerLogLines))
		}
		if err := b.removeFolder(); err != nil {
			tb.Error(err)
		}
	})
	return b
}

// URL returns postgres://user@127.0.0.1:PORT/database?sslmode=disable: the same database and user
// as the backend URL, reached through pgbouncer, usable as a plain pgx connection string.
func (b *PgBouncer) URL() string { return b.url }

// AdminURL returns the URL of pgbouncer's admin console (database pgbouncer). The console speaks
// only the simple query protocol, so the URL carries default_query_exec_mode=simple_protocol, which
// pgx understands and libpq does not.
func (b *PgBouncer) AdminURL() string { return b.adminURL }

// Console runs one admin console command, such as "SHOW POOLS", "SHOW STATS" or "RECONNECT", and
// returns its rows as column name to text value, so tests can read any column of any SHOW command
// without a type per command; NULLs read as "".
func (b *PgBouncer) Console(tb testing.TB, command string) []map[string]string {
	tb.Helper()
	rows, err := b.console(command)
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}

// Pool returns the SHOW POOLS row of the database, e.g. pool["pool_mode"] ("transaction"),
// pool["cl_active"], pool["cl_waiting"], pool["sv_active"], pool["sv_idle"].
func (b *PgBouncer) Pool(tb testing.TB) map[string]string {
	tb.Helper()
	rows, err := b.console("SHOW POOLS")
	if err != nil {
		tb.Fatal(err)
	}
	for _, row := range rows {
		if row["database"] == b.database {
			return row
		}
	}
	tb.Fatalf("pgtest: SHOW POOLS has no row for database %s: %v", b.database, rows)
	return nil
}

// console is Console without the testing.TB, for callers that want to check the error themselves.
func (b *PgBouncer) console(command string) ([]map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.adminURL)
	if err != nil {
		return nil, fmt.Errorf("pgtest: connecting to the pgbouncer admin console: %w", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, command)
	if err != nil {
		return nil, fmt.Errorf("pgtest: pgbouncer admin console: %s: %w", command, err)
	}
	defer rows.Close()
	var result []map[string]string
	for rows.Next() {
		fields := rows.FieldDescriptions()
		row := make(map[string]string, len(fields))
		for i, raw := range rows.RawValues() {
			row[fields[i].Name] = string(raw)
		}
		result = append(result, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgtest: pgbouncer admin console: %s: %w", command, err)
	}
	return result, nil
}

// findPgBouncer looks on PATH first, so a developer can choose a build, and then in /usr/sbin,
// where Debian installs it without putting it on a normal user's PATH.
func findPgBouncer() (string, error) {
	if path, err := exec.LookPath("pgbouncer"); err == nil {
		return path, nil
	}
	if path := "/usr/sbin/pgbouncer"; isExecutable(path) {
		return path, nil
	}
	return "", errNoPgBouncer
}

// plainIniName matches database and user names that need no quoting in pgbouncer.ini, which covers
// the names NewDatabase makes; anything else is refused rather than quoted by guesswork.
var plainIniName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// startPgBouncer writes the configuration, starts the watchdog and then pgbouncer, trying another
// port when some other process grabbed the chosen one first; on failure it cleans up after itself.
func startPgBouncer(backendURL string) (_ *PgBouncer, err error) {
	bin, err := findPgBouncer()
	if err != nil {
		return nil, err
	}
	backend, err := pgx.ParseConfig(backendURL)
	if err != nil {
		return nil, fmt.Errorf("pgtest: parsing the backend URL for pgbouncer: %w", err)
	}
	if !plainIniName.MatchString(backend.Database) || !plainIniName.MatchString(backend.User) {
		return nil, fmt.Errorf("pgtest: pgbouncer: database %q or user %q is not a plain name of letters, digits and _", backend.Database, backend.User)
	}
	// A client of pgbouncer waits for a server that cannot be reached until a timeout, so an
	// unreachable backend is reported here, at once and in its own words.
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := pingDatabase(ctx, backendURL); err != nil {
		return nil, fmt.Errorf("pgtest: the database for pgbouncer is not reachable: %w", err)
	}
	runAs, err := serverAccount()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgbouncer-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: creating a temporary folder for pgbouncer: %w", err)
	}
	b := &PgBouncer{database: backend.Database, dir: dir, logPath: filepath.Join(dir, "pgbouncer.log")}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.terminate(), b.removeFolder())
		}
	}()
	if runAs != nil {
		if err := os.Chown(dir, runAs.uid, runAs.gid); err != nil {
			return nil, fmt.Errorf("pgtest: giving %s to the %s OS user: %w", dir, runAs.name, err)
		}
	}
	if err := b.startWatchdog(runAs); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if err := b.writeConfig(backend, port, runAs); err != nil {
			return nil, err
		}
		portInUse, err := b.start(bin, port, runAs)
		if err == nil {
			return b, nil
		}
		if !portInUse || attempt == startAttempts {
			return nil, err
		}
	}
}

// start runs pgbouncer in the foreground, so it stays a child the test can signal and wait for,
// and returns once it serves queries; portInUse tells startPgBouncer that another port may help.
func (b *PgBouncer) start(bin string, port int, runAs *account) (portInUse bool, err error) {
	logStart := fileSize(b.logPath)
	// -q: everything goes to the log file, which is shown when the test fails.
	cmd := exec.Command(bin, "-q", filepath.Join(b.dir, "pgbouncer.ini"))
	cmd.Dir = b.dir
	// Its own process group keeps a Ctrl-C meant for go test away from it; the watchdog stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: runAs.credential()}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("pgtest: starting %s: %w", bin, err)
	}
	p := &pgBouncerProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	b.proc = p
	if _, err := fmt.Fprintln(b.watchdogIn, cmd.Process.Pid); err != nil {
		return false, fmt.Errorf("pgtest: telling the pgbouncer watchdog the pid: %w", err)
	}
	if err := b.waitReady(port); err != nil {
		log := b.logSince(logStart)
		return strings.Contains(log, "Address already in use"),
			errors.Join(fmt.Errorf("%w\nlast lines of the pgbouncer log:\n%s", err, lastLines(log, 20)), b.terminate())
	}
	return false, nil
}

// waitReady polls with real queries through pgbouncer rather than sleeping, which also proves it
// reaches the backend; it stops early when pgbouncer exits or answers with an error.
func (b *PgBouncer) waitReady(port int) error {
	p := b.proc
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	// Whoever holds the port when pgbouncer could not bind it may accept connections and never
	// answer, so pgbouncer's exit must also end a connection attempt in progress.
	go func() {
		select {
		case <-p.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		err := pingDatabase(ctx, b.url)
		select {
		case <-p.exited: // whatever answered, it was not this pgbouncer
			return fmt.Errorf("pgtest: pgbouncer on %s:%d exited during start-up: %v", host, port, p.err)
		default:
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pgtest: waiting for pgbouncer on %s:%d to accept connections: %w", host, port, err)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("pgtest: querying through pgbouncer on %s:%d: %w", host, port, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// pingDatabase connects and runs a query without arguments, which pgx sends with the simple protocol, so
// no prepared statement is left behind on the server connection for later clients to trip over.
func pingDatabase(ctx context.Context, connURL string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SELECT 1")
	return err
}

// stop shuts pgbouncer down and reports one that died on its own, since the test then ran
// against a pooler that was gone.
func (b *PgBouncer) stop() error {
	p := b.proc
	if p == nil {
		return nil
	}
	select {
	case <-p.exited:
		b.proc = nil
		return fmt.Errorf("pgtest: pgbouncer exited before it was stopped: %v", p.err)
	default:
	}
	return b.terminate()
}

// terminate sends SIGTERM (immediate shutdown: open client connections are cut, as nobody needs
// them any more) and waits for pgbouncer to exit, killing it if it takes too long.
func (b *PgBouncer) terminate() error {
	p := b.proc
	if p == nil {
		return nil
	}
	b.proc = nil
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(pgBouncerStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("pgtest: pgbouncer did not exit within %v of SIGTERM and was killed", pgBouncerStopTimeout)
	}
}

// removeFolder dismisses the watchdog and removes the folder; call it after stop.
func (b *PgBouncer) removeFolder() error {
	var errs []error
	if b.watchdog != nil {
		if err := dismissWatchdog(b.watchdog, b.watchdogIn); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: waiting for the pgbouncer watchdog to exit: %w", err))
		}
		b.watchdog = nil
	}
	if err := os.RemoveAll(b.dir); err != nil {
		errs = append(errs, fmt.Errorf("pgtest: removing the pgbouncer folder: %w", err))
	}
	return errors.Join(errs...)
}

// logSince returns what pgbouncer logged from offset on, so a failed start shows its own lines.
func (b *PgBouncer) logSince(offset int64) string { return readLogSince(b.logPath, offset) }

// pgBouncerWatchdogScript learns the pid of each pgbouncer started from its stdin and, when stdin
// closes without "done" (the test process died), stops the last one and removes the folder.
const pgBouncerWatchdogScript = `pid=
while read -r line; do
	[ "$line" = done ] && exit 0
	pid=$line
done
[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
rm -rf "$1"`

// startWatchdog starts the shell that cleans up after a test process that died without doing so,
// because nothing else would stop a pgbouncer whose parent is gone.
func (b *PgBouncer) startWatchdog(runAs *account) error {
	cmd := exec.Command("/bin/sh", "-c", pgBouncerWatchdogScript, "pgtest-pgbouncer-watchdog", b.dir)
	cmd.Dir = b.dir
	// Its own process group keeps a Ctrl-C meant for go test from killing it before it can clean up;
	// stdout and stderr stay /dev/null so go test never waits for it to close them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: runAs.credential()}
	in, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("pgtest: creating the pgbouncer watchdog's stdin pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		_ = in.Close()
		return fmt.Errorf("pgtest: starting the pgbouncer watchdog: %w", err)
	}
	b.watchdog, b.watchdogIn = cmd, in
	return nil
}

// credential switches a child process to the account directly rather than through runuser, so
// the test's signals reach pgbouncer itself and not a runuser process in between; nil keeps the
// current user.
func (a *account) credential() *syscall.Credential {
	if a == nil {
		return nil
	}
	// No Groups (and NoSetGroups false) drops root's supplementary groups.
	return &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid)}
}
