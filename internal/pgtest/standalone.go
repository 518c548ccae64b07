package pgtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Cluster is a throwaway PostgreSQL cluster for programs that run outside go test, such as the
// benchmark harness: the same initdb/pg_ctl cluster, on a free port and with the same watchdog, as
// the tests get, but started and removed by the caller since there is no testing.TB to do it.
type Cluster struct {
	c *cluster
}

// StartCluster initialises and starts a cluster of its own on a free port of 127.0.0.1. The
// caller must call Close; if the program dies first, the watchdog stops the cluster and removes
// its folder.
func StartCluster() (*Cluster, error) {
	c, err := newCluster()
	if err != nil {
		return nil, err
	}
	if err := c.startOnFreePort(); err != nil {
		return nil, errors.Join(err, c.destroy())
	}
	return &Cluster{c: c}, nil
}

// URL returns postgres://postgres@127.0.0.1:PORT/database?sslmode=disable, the superuser URL of
// the named database, since trust authentication needs no password.
func (c *Cluster) URL(database string) string { return c.c.url(database) }

// CreateDatabase creates an empty database called name and returns its URL; it goes away with
// the cluster, so there is nothing to drop.
func (c *Cluster) CreateDatabase(name string) (string, error) {
	if err := execSQL(c.c.url("postgres"), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: creating database %s: %w", name, err)
	}
	return c.c.url(name), nil
}

// Close stops the server, dismisses the watchdog and removes the cluster's folder; calling it
// again does nothing more.
func (c *Cluster) Close() error { return c.c.destroy() }

// ServerPID returns the process id of the cluster's postmaster, the parent of every server
// process, so a program can read how much CPU the server used from /proc.
func (c *Cluster) ServerPID() (int, error) {
	data, err := os.ReadFile(filepath.Join(c.c.dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: reading the server's pid: %w", err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("pgtest: parsing the server's pid %q: %w", first, err)
	}
	return pid, nil
}
