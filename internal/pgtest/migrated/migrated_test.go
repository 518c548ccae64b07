package migrated_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/internal/pgtest/migrated"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestCopyHasTheSchemaMigrationGives compares a copy of the template with a database migrated from
// empty in this test, so a template that missed a migration, or set up anything else, is caught.
func TestCopyHasTheSchemaMigrationGives(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fresh := pgtest.NewDatabase(t)
	require.NoError(t, migrated.Migrate(ctx, fresh))
	want := catalog(t, fresh)
	require.NotEmpty(t, want.migrations, "migrating from empty applied no migrations")
	got := catalog(t, migrated.NewDatabase(t))
	assert.Equal(t, want.migrations, got.migrations, "the migrations recorded in schema_migrations")
	assert.Equal(t, want.objects, got.objects, "the schema's tables, columns, constraints, indexes, functions and triggers")
	assert.Equal(t, want.rows, got.rows, "the rows in each table")
}

// TestCopiesAreSeparate checks that what one test writes in its copy stays out of another test's.
func TestCopiesAreSeparate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := connect(t, migrated.NewDatabase(t)), connect(t, migrated.NewDatabase(t))
	_, err := a.Exec(ctx, `INSERT INTO pgsession.users (username, password_hash) VALUES ('alice', 'x')`)
	require.NoError(t, err)
	var n int
	require.NoError(t, b.QueryRow(ctx, `SELECT count(*) FROM pgsession.users`).Scan(&n))
	assert.Zero(t, n, "a user created in one copy is in the other")
}

// schema is what a database holds, each part as sorted lines of text that read well in a diff.
type schema struct {
	migrations, objects, rows []string
}

func catalog(t *testing.T, url string) schema {
	t.Helper()
	conn := connect(t, url)
	var s schema
	s.migrations = lines(t, conn, `SELECT version || ' ' || name FROM pgsession.schema_migrations ORDER BY version`)
	// Every object in the schemas migrations create, described by PostgreSQL's own deparsers, so a
	// changed default, constraint or function body shows up as well as a missing table.
	s.objects = lines(t, conn, `
		WITH ns AS (SELECT oid, nspname FROM pg_namespace
			WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%')
		SELECT 'schema ' || nspname FROM ns
		UNION ALL
		SELECT 'relation ' || ns.nspname || '.' || c.relname || ' ' || c.relkind::text
		FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
		UNION ALL
		SELECT 'column ' || ns.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
			|| CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
			|| coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
		UNION ALL
		SELECT 'constraint ' || ns.nspname || '.' || conname || ' ' || pg_get_constraintdef(co.oid)
		FROM pg_constraint co JOIN ns ON ns.oid = co.connamespace
		UNION ALL
		SELECT 'index ' || pg_get_indexdef(i.indexrelid)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN ns ON ns.oid = c.relnamespace
		UNION ALL
		SELECT 'function ' || pg_get_functiondef(p.oid)
		FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
		UNION ALL
		SELECT 'trigger ' || pg_get_triggerdef(tg.oid)
		FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN ns ON ns.oid = c.relnamespace
		WHERE NOT tg.tgisinternal
		UNION ALL
		SELECT 'extension ' || extname FROM pg_extension
		ORDER BY 1`)
	// Rows a migration inserts, counted per table since timestamps in them differ between databases.
	for _, table := range lines(t, conn, `SELECT quote_ident(schemaname) || '.' || quote_ident(relname) FROM pg_stat_user_tables ORDER BY 1`) {
		var n int
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
		s.rows = append(s.rows, fmt.Sprintf("%s %d", table, n))
	}
	return s
}

func lines(t *testing.T, conn *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// BenchmarkNewDatabase compares what a test pays for its database: a copy of the template, against
// an empty database migrated in the test as every test did before there was a template.
func BenchmarkNewDatabase(b *testing.B) {
	b.Run("copy", func(b *testing.B) {
		migrated.NewDatabase(b) // the template's setup, once, outside the timing
		b.ResetTimer()
		for b.Loop() {
			migrated.NewDatabase(b)
		}
	})
	b.Run("migrate", func(b *testing.B) {
		for b.Loop() {
			if err := migrated.Migrate(context.Background(), pgtest.NewDatabase(b)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
