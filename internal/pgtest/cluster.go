package pgtest

import (
	"context"
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
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// A throwaway cluster of the machine's PostgreSQL: finding its binaries,
// initdb as an unprivileged account, starting on a free port and stopping,
// and a watchdog that stops it if the test binary dies.

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

// newClusterFolder makes the folder of a cluster not yet initialised,
// owned by the account the server runs as, with the watchdog that stops the
// server if the test binary dies; what names the cluster in errors. On
// failure it removes what it made.
func newClusterFolder(bin binaries, runAs *account, prefix, what string) (c *cluster, err error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("pgtest: creating a temporary folder for %s: %w", what, err)
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
	return c, nil
}

// socketDirFor is where a cluster in dir puts its Unix socket: none when
// the path would be longer than sun_path (108 bytes) allows, which would
// stop the server from starting; every client here uses TCP.
func socketDirFor(dir string) string {
	if len(dir)+len("/.s.PGSQL.65535") >= 100 {
		return ""
	}
	return dir
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
	c, err = newClusterFolder(bin, runAs, "pgtest-", "PostgreSQL")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.destroy())
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), initdbTimeout)
	defer cancel()
	// Trust authentication and no locale keep setup simple and byte-order collation predictable;
	// --no-sync skips fsync because the cluster is thrown away anyway.
	out, err := c.command(ctx, bin.initdb, "-D", c.dataDir, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pgtest: initialising a PostgreSQL cluster with %s: %w\n%s", bin.initdb, err, strings.TrimSpace(string(out)))
	}

	socketDir := socketDirFor(c.dir)
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
