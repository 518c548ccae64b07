package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// setupTimeout bounds a template's setup, which runs every migration once, on a machine that may be
// running many test binaries at once.
const setupTimeout = 2 * time.Minute

// Template is a database set up once per test binary and copied, with CREATE DATABASE ... TEMPLATE,
// for every test that asks for one, because copying a database costs a fraction of setting it up
// again (running every migration, say) in each test.
//
// Each test binary sets up its own template under a random name, so test binaries running at once
// on one server never copy or drop each other's; Main drops it when the binary's tests end.
type Template struct {
	label string
	setup func(ctx context.Context, url string) error

	once     sync.Once
	adminURL string // where the template was created, and its copies are
	name     string
	err      error
}

// templates are the templates set up in this test binary, which Run drops at the end.
var templates struct {
	mu   sync.Mutex
	list []*Template
}

// NewTemplate returns a template that setup prepares on first use, given the URL of the new,
// empty template database; label names it (t_template_<label>_<random>). Setup must close every
// connection it opened before it returns, because PostgreSQL copies a database only while nobody
// is connected to it. Declare the template as a package variable, so the binary sets it up once:
//
//	var migrated = pgtest.NewTemplate("migrated", func(ctx context.Context, url string) error { ... })
func NewTemplate(label string, setup func(ctx context.Context, url string) error) *Template {
	return &Template{label: label, setup: setup}
}

// NewDatabase returns the URL of a new copy of the template, dropped (WITH (FORCE)) when the test
// ends, on the same server NewDatabase (the function) uses. If the setup failed, every test that
// asks fails with its error.
func (tp *Template) NewDatabase(tb testing.TB) string {
	tb.Helper()
	tp.once.Do(tp.create)
	if tp.err != nil {
		tb.Fatal(tp.err)
	}
	dbURL, drop := createDatabase(tb, tp.adminURL, tp.name)
	tb.Cleanup(func() {
		if err := drop(); err != nil {
			tb.Error(err)
		}
	})
	return dbURL
}

// create creates the template database, runs the setup in it and closes it to connections, so a
// stray connection can never stop it from being copied; on failure it drops what it created.
func (tp *Template) create() {
	adminURL, err := serverURL()
	if err != nil {
		tp.err = err
		return
	}
	name := databaseName("template " + tp.label)
	dbURL, err := withDatabase(adminURL, name)
	if err != nil {
		tp.err = err
		return
	}
	ident := pgx.Identifier{name}.Sanitize()
	if err := execSQL(adminURL, "CREATE DATABASE "+ident); err != nil {
		tp.err = fmt.Errorf("pgtest: creating template database %s: %w", name, err)
		return
	}
	tp.adminURL, tp.name = adminURL, name
	templates.mu.Lock()
	templates.list = append(templates.list, tp)
	templates.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := tp.setup(ctx, dbURL); err != nil {
		tp.err = fmt.Errorf("pgtest: setting up template %s: %w", name, err)
		return
	}
	if err := execSQL(adminURL, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS false"); err != nil {
		tp.err = fmt.Errorf("pgtest: closing template %s to connections: %w", name, err)
		return
	}
	if err := waitUnused(ctx, adminURL, name); err != nil {
		tp.err = err
	}
}

// waitUnused waits until no session is connected to the database, because a pool closed by the
// setup has sent its goodbyes but the server processes may not have exited yet, and CREATE DATABASE
// would otherwise wait five seconds for them and then fail.
func waitUnused(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("pgtest: connecting to check template %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name).Scan(&n); err != nil {
			return fmt.Errorf("pgtest: counting connections to template %s: %w", name, err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: template %s still has %d connections after its setup, which must close them all (pool.Close) before it returns", name, n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// dropTemplates drops the templates this binary set up, because on a server of the developer's own
// (PGSESSION_TEST_DATABASE_URL) nothing else would.
func dropTemplates() error {
	templates.mu.Lock()
	defer templates.mu.Unlock()
	var errs []error
	for _, tp := range templates.list {
		if err := execSQL(tp.adminURL, "DROP DATABASE IF EXISTS "+pgx.Identifier{tp.name}.Sanitize()+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: dropping template %s: %w", tp.name, err))
		}
	}
	templates.list = nil
	return errors.Join(errs...)
}

// serverURL returns the URL databases are created through: PGSESSION_TEST_DATABASE_URL, or the
// shared cluster's, started on first use.
func serverURL() (string, error) {
	if u := os.Getenv(envDatabaseURL); u != "" {
		return u, nil
	}
	c, err := sharedCluster()
	if err != nil {
		return "", err
	}
	return c.url("postgres"), nil
}
