// Package migrated gives tests a real PostgreSQL database with the pg_session schema installed,
// in the default schema (pgsession), as store.Migrate leaves it.
//
// Each test binary migrates one template database the first time a test asks, and every test gets
// a copy of it (CREATE DATABASE ... TEMPLATE), which takes a fraction of the time running every
// migration in each test did. Tests of the migrations themselves, and of a server that installs or
// upgrades the schema, start from pgtest.NewDatabase, which stays empty.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) } // drops the template too
//
//	func TestSomething(t *testing.T) {
//		url := migrated.NewDatabase(t) // postgres://... of a new database, schema installed
//		...
//	}
package migrated

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// template is migrated once per test binary, by the same store.Migrate a server runs at start.
var template = pgtest.NewTemplate("migrated", Migrate)

// NewDatabase returns the URL of a new database with the schema installed, dropped when the test
// ends; see pgtest.NewDatabase for the server it is on.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return template.NewDatabase(tb)
}

// Migrate installs the schema in the database at url as a server does at start (store.Migrate with
// the default options) and closes its connections, so the database can be copied.
func Migrate(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer pool.Close()
	s, err := store.New(pool, store.Options{})
	if err != nil {
		return fmt.Errorf("opening the store: %w", err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}
