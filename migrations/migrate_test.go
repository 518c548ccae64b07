package migrations_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func TestMigrateInstallsSchemaOnce(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t, pgtest.NewDatabase(t))
	all, err := migrations.All()
	require.NoError(t, err)
	require.NotEmpty(t, all)

	n, err := migrations.Migrate(ctx, pool, "pgsession")
	require.NoError(t, err)
	assert.Equal(t, len(all), n)
	n, err = migrations.Migrate(ctx, pool, "pgsession")
	require.NoError(t, err)
	assert.Zero(t, n, "a second run has nothing to do")

	var tables []string
	rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'pgsession' ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	assert.Equal(t, []string{"account_links_sent", "account_tokens", "api_tokens", "audit_log", "ceremony_keys", "groups", "identities", "identity_flows", "identity_invitations",
		"login_attempts", "maintenance", "passkeys", "pending_logins", "recovery_codes", "schema_migrations", "sessions",
		"sign_in_history", "totp_secrets", "used_challenges", "user_groups", "user_invitations", "users"}, tables)

	var indexes int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'pgsession'
		AND indexname IN ('sessions_user_id_idx', 'sessions_expires_at_idx')`).Scan(&indexes))
	assert.Equal(t, 2, indexes)

	var public int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&public))
	assert.Zero(t, public, "nothing lands in the application's public schema")
}

func TestTwoSchemasLiveSideBySide(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t, pgtest.NewDatabase(t))
	_, err := migrations.Migrate(ctx, pool, "site_a")
	require.NoError(t, err)
	_, err = migrations.Migrate(ctx, pool, "site_b")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO site_a.users (username, password_hash) VALUES ('alice', 'x')`)
	require.NoError(t, err)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM site_b.users`).Scan(&n))
	assert.Zero(t, n)
}

func TestRacingMigratorsAllSucceed(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	const servers = 8
	// Each migrator has its own pool, as separate Caddy servers would.
	pools := make([]*pgxpool.Pool, servers)
	for i := range pools {
		pools[i] = newPool(t, url)
	}
	start := make(chan struct{})
	errs := make([]error, servers)
	applied := make([]int, servers)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() {
			<-start
			applied[i], errs[i] = migrations.Migrate(ctx, pools[i], "pgsession")
		})
	}
	close(start)
	wg.Wait()

	all, _ := migrations.All()
	total := 0
	for i := range servers {
		assert.NoError(t, errs[i], "migrator %d", i)
		total += applied[i]
	}
	assert.Equal(t, len(all), total, "each migration is applied exactly once")
	var versions int
	require.NoError(t, pools[0].QueryRow(ctx, `SELECT count(*) FROM pgsession.schema_migrations`).Scan(&versions))
	assert.Equal(t, len(all), versions)
}

func TestValidateSchema(t *testing.T) {
	for name, ok := range map[string]bool{
		"pgsession": true, "site_a": true, "_x1": true,
		"": false, "pg_session": false, "PgSession": false, "1abc": false, "a-b": false,
		`x"; DROP TABLE users; --`: false, "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234": false,
	} {
		err := migrations.ValidateSchema(name)
		assert.Equal(t, ok, err == nil, "%q: %v", name, err)
	}
}

func TestInstalledSchemaNeedsNoCreatePrivilege(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	owner := newPool(t, url)
	_, err := migrations.Migrate(ctx, owner, "pgsession")
	require.NoError(t, err)

	// A role that may use the installed tables but create nothing, as a
	// cautious operator would give the web server.
	role := "app_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	for _, sql := range []string{
		`DROP ROLE IF EXISTS ` + role,
		`CREATE ROLE ` + role + ` LOGIN`,
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
		`GRANT USAGE ON SCHEMA pgsession TO ` + role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgsession TO ` + role,
	} {
		_, err := owner.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	t.Cleanup(func() {
		owner.Exec(context.Background(), `DROP OWNED BY `+role)
		owner.Exec(context.Background(), `DROP ROLE IF EXISTS `+role)
	})
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.User = role
	limited, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(limited.Close)

	n, err := migrations.Migrate(ctx, limited, "pgsession")
	require.NoError(t, err, "an up-to-date schema needs no CREATE privilege")
	assert.Zero(t, n)
}

// A session made without naming how it was signed in is a password
// session, as every session from before the column is, and a method the
// code does not know is refused by the table itself.
func TestSessionAuthMethodDefaultsToPasswordAndIsChecked(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t, pgtest.NewDatabase(t))
	_, err := migrations.Migrate(ctx, pool, "pgsession")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO pgsession.users (username, password_hash) VALUES ('alice', 'x')`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO pgsession.sessions (id, user_id, expires_at)
		SELECT 'abc', id, now() + interval '1 hour' FROM pgsession.users`)
	require.NoError(t, err)
	var method string
	require.NoError(t, pool.QueryRow(ctx, `SELECT auth_method FROM pgsession.sessions`).Scan(&method))
	assert.Equal(t, "password", method)
	for _, ok := range []string{"password+totp", "password+recovery_code", "passkey", "provider", "provider+mfa",
		"provider+totp", "provider+recovery_code", "password"} {
		_, err = pool.Exec(ctx, `UPDATE pgsession.sessions SET auth_method = $1`, ok)
		assert.NoError(t, err, ok)
	}
	_, err = pool.Exec(ctx, `UPDATE pgsession.sessions SET auth_method = 'api_token'`)
	assert.ErrorContains(t, err, "sessions_auth_method_check")
}

// The identity tables hold their rules themselves, for hand-written SQL
// too: a provider's name has one spelling, a user has one identity of a
// provider, a subject is one user's, and a user may have no password.
func TestIdentityTablesHoldTheirRules(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t, pgtest.NewDatabase(t))
	_, err := migrations.Migrate(ctx, pool, "pgsession")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO pgsession.users (username, password_hash) VALUES ('alice', 'x'), ('bob', NULL)`)
	require.NoError(t, err, "a user without a password")
	link := func(user, provider, subject string) error {
		_, err := pool.Exec(ctx, `INSERT INTO pgsession.identities (provider, subject, user_id)
			SELECT $2, $3, id FROM pgsession.users WHERE username = $1`, user, provider, subject)
		return err
	}
	require.NoError(t, link("alice", "google", "1"))
	assert.ErrorContains(t, link("bob", "google", "1"), "identities_pkey", "a subject is one user's")
	assert.ErrorContains(t, link("alice", "google", "2"), "identities_one_per_provider")
	for _, bad := range []string{"Google", "", "key_cloak", strings.Repeat("a", 33)} {
		assert.ErrorContains(t, link("bob", bad, "3"), "identity_provider_check", "%q", bad)
	}
	assert.ErrorContains(t, link("bob", "github", ""), "identities_subject_check")
	_, err = pool.Exec(ctx, `INSERT INTO pgsession.identity_flows (id, binding, provider, nonce, pkce_verifier, expires_at)
		VALUES ('a', 'b', 'GitHub', '', '', now())`)
	assert.ErrorContains(t, err, "identity_provider_check", "every table names providers alike")
	_, err = pool.Exec(ctx, `INSERT INTO pgsession.sign_in_history (user_id, outcome, factor)
		SELECT id, 'success', 'provider' FROM pgsession.users WHERE username = 'bob'`)
	assert.NoError(t, err, "the history names a provider's sign-in")
}
