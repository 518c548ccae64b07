// Package migrations installs and upgrades the caddy-pgsession schema.
//
// Migrations are numbered plain-SQL files embedded in the binary. Each is
// applied in its own transaction with search_path set to the plugin's schema,
// so the SQL names tables without a schema and the schema name stays
// configurable.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed *.sql
var files embed.FS

// DefaultSchema is the PostgreSQL schema that holds the plugin's tables
// unless configured otherwise; its own schema keeps the plugin clear of an
// application's own users or sessions tables. It is not "pg_session" because
// PostgreSQL reserves the pg_ prefix for its system schemas.
const DefaultSchema = "pgsession"

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

var fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// All returns the embedded migrations in version order.
func All() ([]Migration, error) {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, fmt.Errorf("reading embedded migrations: %w", err)
	}
	var all []Migration
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q: name must look like 0001_name.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		body, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, fmt.Errorf("reading migration %s: %w", e.Name(), err)
		}
		all = append(all, Migration{Version: version, Name: m[2], SQL: string(body)})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Version < all[j].Version })
	for i := 1; i < len(all); i++ {
		if all[i].Version == all[i-1].Version {
			return nil, fmt.Errorf("two migrations share version %d", all[i].Version)
		}
	}
	return all, nil
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ValidateSchema reports whether name can be the plugin's schema. Names are
// limited to lowercase identifiers so that what a user writes in a Caddyfile
// is exactly what psql shows, without quoting surprises.
func ValidateSchema(name string) error {
	if name == "" {
		return errors.New("schema name is empty")
	}
	if len(name) > 63 {
		return fmt.Errorf("schema name %q is longer than PostgreSQL's 63-byte limit", name)
	}
	if !schemaName.MatchString(name) {
		return fmt.Errorf("schema name %q must be lowercase letters, digits and underscores, not starting with a digit", name)
	}
	if strings.HasPrefix(name, "pg_") {
		return fmt.Errorf("schema name %q starts with pg_, which PostgreSQL reserves for system schemas", name)
	}
	return nil
}

// lockKey is the advisory lock held while migrating one schema; it differs
// per schema so two plugins on one database with different schemas do not
// wait for each other.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("caddy-pgsession migrate " + schema))
	return int64(h.Sum64())
}

// Migrate applies every embedded migration that schema lacks and returns how
// many it applied. Each migration runs in a transaction of its own that
// first takes a transaction-scoped advisory lock, so several servers
// starting at once against an empty database take turns and all succeed,
// and no lock can outlive its transaction, even through a transaction
// pooler such as PgBouncer, which would hand a session-level lock to
// another client's server connection.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) (int, error) {
	if err := ValidateSchema(schema); err != nil {
		return 0, err
	}
	all, err := All()
	if err != nil {
		return 0, err
	}
	count := 0
	for {
		var applied *Migration
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			applied, err = applyNext(ctx, tx, schema, all)
			return err
		})
		if err != nil {
			return count, err
		}
		if applied == nil {
			return count, nil
		}
		count++
	}
}

// applyNext applies, in tx, the first migration that schema lacks and
// returns it; nil when the schema is up to date.
func applyNext(ctx context.Context, tx pgx.Tx, schema string, all []Migration) (*Migration, error) {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(schema)); err != nil {
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	// Existence is checked before any CREATE, because even CREATE ... IF NOT
	// EXISTS needs the privilege to create: a role that may only use an
	// installed schema can still start.
	quoted := pgx.Identifier{schema}.Sanitize()
	var haveSchema, haveTable bool
	if err := tx.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL, to_regclass($2) IS NOT NULL`,
		quoted, quoted+".schema_migrations").Scan(&haveSchema, &haveTable); err != nil {
		return nil, fmt.Errorf("looking for schema %s: %w", schema, err)
	}
	if !haveSchema {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+quoted); err != nil {
			return nil, fmt.Errorf("creating schema %s: %w", schema, err)
		}
	}
	if !haveTable {
		if _, err := tx.Exec(ctx, `CREATE TABLE `+quoted+`.schema_migrations (
			version    integer     PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return nil, fmt.Errorf("creating %s.schema_migrations: %w", schema, err)
		}
	}

	rows, err := tx.Query(ctx, "SELECT version FROM "+quoted+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("reading applied migrations: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("reading applied migrations: %w", err)
	}
	applied := make(map[int]bool, len(done))
	for _, v := range done {
		applied[int(v)] = true
	}
	for _, m := range all {
		if applied[m.Version] {
			continue
		}
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+quoted); err != nil {
			return nil, fmt.Errorf("applying migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("applying migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+quoted+".schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return nil, fmt.Errorf("applying migration %04d_%s: %w", m.Version, m.Name, err)
		}
		return &m, nil
	}
	return nil, nil
}
