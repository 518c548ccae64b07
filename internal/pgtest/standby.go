package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A primary and its streaming standby, for tests of a failover: the
// standby is made with pg_basebackup -R from a running Server, follows it,
// and takes over when promoted, as an operator or a failover manager does
// once the primary is gone.
//
//	primary := pgtest.NewServer(t)
//	standby := primary.NewStandby(t)
//	standby.WaitCaughtUp(t, primary)
//	primary.StopImmediately(t) // the primary crashes
//	standby.Promote(t)         // the standby now takes writes

// StopImmediately shuts the server down with pg_ctl stop -m immediate, as a
// crash would: every connection is reset at once, without a shutdown
// message. Stopping a stopped server does nothing.
func (s *Server) StopImmediately(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.c.running {
		return
	}
	if err := s.c.stop("immediate"); err != nil {
		tb.Fatal(err)
	}
}

// Standby is a streaming replica of a Server, read-only until promoted.
type Standby struct {
	c  *cluster
	mu sync.Mutex
}

// NewStandby makes a standby of the running server with pg_basebackup -R
// and starts it on a free port; it is stopped and its folder removed when
// the test ends. The server's default settings (wal_level replica, ten WAL
// senders, trusted replication connections from 127.0.0.1) allow it.
func (s *Server) NewStandby(tb testing.TB) *Standby {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.c.running {
		tb.Fatal("pgtest: a standby needs a running primary")
	}
	c, err := newStandbyCluster(s.c)
	if err != nil {
		tb.Fatal(err)
	}
	sb := &Standby{c: c}
	tb.Cleanup(func() {
		sb.mu.Lock()
		defer sb.mu.Unlock()
		if err := c.destroy(); err != nil {
			tb.Error(err)
		}
	})
	if err := c.startOnFreePort(); err != nil {
		tb.Fatal(err)
	}
	return sb
}

// newStandbyCluster copies the primary's data folder over a replication
// connection into a new folder, with the settings that make it follow the
// primary (standby.signal, primary_conninfo), and its own socket folder.
func newStandbyCluster(primary *cluster) (_ *cluster, err error) {
	c, err := newClusterFolder(primary.bin, primary.runAs, "pgtest-standby-", "a standby")
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
	basebackup := findBasebackup(c.bin.pgCtl)
	out, err := c.command(ctx, basebackup, "-h", host, "-p", fmt.Sprint(primary.port), "-U", "postgres",
		"-D", c.dataDir, "-R", "-X", "stream", "-c", "fast").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pgtest: copying the primary with %s: %w\n%s", basebackup, err, strings.TrimSpace(string(out)))
	}
	// The copy has the primary's postgresql.conf, whose socket folder is
	// the primary's; the later setting wins.
	socketDir := socketDirFor(c.dir)
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("pgtest: opening the standby's postgresql.conf: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# Added by pgtest for the standby.\nunix_socket_directories = '%s'\n",
		strings.ReplaceAll(socketDir, "'", "''"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("pgtest: writing the standby's postgresql.conf: %w", err)
	}
	return c, nil
}

// findBasebackup looks for pg_basebackup beside pg_ctl, following a link
// to the folder of the server's version, and then on PATH.
func findBasebackup(pgCtl string) string {
	if real, err := filepath.EvalSymlinks(pgCtl); err == nil {
		if p := filepath.Join(filepath.Dir(real), "pg_basebackup"); isExecutable(p) {
			return p
		}
	}
	if p, err := exec.LookPath("pg_basebackup"); err == nil {
		return p
	}
	return "pg_basebackup"
}

// Port returns the TCP port the standby listens on.
func (sb *Standby) Port() int { return sb.c.port }

// URL returns the superuser URL of the named database on the standby.
func (sb *Standby) URL(database string) string { return sb.c.url(database) }

// URLOf returns the URL of the database of dbURL, a URL of the primary's
// (from Server.NewDatabase), on the standby.
func (sb *Standby) URLOf(tb testing.TB, dbURL string) string {
	tb.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatalf("pgtest: parsing a database URL: %v", err)
	}
	return sb.c.url(strings.TrimPrefix(u.Path, "/"))
}

// WaitCaughtUp waits until the standby has replayed everything the primary
// had written when it was called, so nothing committed before is lost when
// the primary then goes away.
func (sb *Standby) WaitCaughtUp(tb testing.TB, primary *Server) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var target string
	// The insert position, not pg_current_wal_lsn's write position: with
	// synchronous_commit off, as the harness runs, a commit's record may not
	// be written yet, and the write position would stop short of it.
	if err := queryRow(ctx, primary.URL("postgres"), `SELECT pg_current_wal_insert_lsn()::text`, &target); err != nil {
		tb.Fatalf("pgtest: reading the primary's WAL position: %v", err)
	}
	for {
		var caughtUp bool
		err := queryRow(ctx, sb.URL("postgres"), `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, &caughtUp, target)
		if err == nil && caughtUp {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("pgtest: the standby did not replay the primary's WAL up to %s: %v", target, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Promote makes the standby a primary with pg_ctl promote and returns once
// it takes writes.
func (sb *Standby) Promote(tb testing.TB) {
	tb.Helper()
	sb.mu.Lock()
	defer sb.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), pgCtlTimeout)
	defer cancel()
	out, err := sb.c.command(ctx, sb.c.bin.pgCtl, "promote", "-w", "-t", "60", "-D", sb.c.dataDir).CombinedOutput()
	if err != nil {
		tb.Fatalf("pgtest: promoting the standby on %s:%d: %v\n%s", host, sb.c.port, err, strings.TrimSpace(string(out)))
	}
}

// queryRow runs one query on a connection of its own and scans its row.
func queryRow(ctx context.Context, connURL, sql string, dest any, args ...any) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql, args...).Scan(dest)
}
