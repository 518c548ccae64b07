package pgsession

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgsession/caddy-pgsession/internal/pgtest/migrated"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// The tests' databases: one for each test, copied from a migrated template, and what tests put in them.

// testDB is a test's PostgreSQL database, with a store for setting up users
// and sessions straight in it.
type testDB struct {
	url   string
	pool  *pgxpool.Pool
	store *store.Store
}

// newTestDB creates a database of the test's own, with the schema installed:
// a copy of the one this test binary migrated, which is much quicker than
// migrating each test's. Tests of installing or upgrading the schema start
// from pgtest.NewDatabase, which is empty.
func newTestDB(t *testing.T) *testDB {
	t.Helper()
	return openTestDB(t, migrated.NewDatabase(t))
}

// testDBAt installs the schema, if it is not there yet, in the database at
// url, e.g. one on a server of the test's own (pgtest.NewServer).
func testDBAt(t *testing.T, url string) *testDB {
	t.Helper()
	db := openTestDB(t, url)
	_, err := db.store.Migrate(context.Background())
	require.NoError(t, err)
	return db
}

// openTestDB opens the database at url as it is.
func openTestDB(t *testing.T, url string) *testDB {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := store.New(pool, store.Options{Argon2: cheapArgon2})
	require.NoError(t, err)
	return &testDB{url: url, pool: pool, store: s}
}

// addUser creates a user with a password.
func (db *testDB) addUser(t *testing.T, name, password string) *store.User {
	t.Helper()
	u, err := db.store.CreateUser(context.Background(), name, password, false)
	require.NoError(t, err)
	return u
}

// addAdmin creates a user with is_admin.
func (db *testDB) addAdmin(t *testing.T, name, password string) *store.User {
	t.Helper()
	u, err := db.store.CreateUser(context.Background(), name, password, true)
	require.NoError(t, err)
	return u
}

// addBcryptUser creates a user with a bcrypt hash, as imported from an
// htpasswd file, which the plugin accepts and upgrades at the next login.
func (db *testDB) addBcryptUser(t *testing.T, name, password string, isAdmin bool) *store.User {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	require.NoError(t, err)
	u, err := db.store.CreateUserWithHash(context.Background(), name, string(hash), isAdmin)
	require.NoError(t, err)
	return u
}

// userNamed finds a user by name.
func (db *testDB) userNamed(t *testing.T, name string) *store.User {
	t.Helper()
	u, err := db.store.GetUserByName(t.Context(), name)
	require.NoError(t, err)
	return u
}

// sessionInDB logs u in straight in the database and returns the cookie
// value and the session's public handle.
func (db *testDB) sessionInDB(t *testing.T, u *store.User) (token, handle string) {
	t.Helper()
	token, sess, err := db.store.CreateSession(context.Background(), store.SessionParams{User: *u, Lifetime: time.Hour, IP: "127.0.0.1"})
	require.NoError(t, err)
	return token, string(sess.Handle)
}

func (db *testDB) exec(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	tag, err := db.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
	return tag.RowsAffected()
}

func (db *testDB) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// queryText runs a query returning one text value.
func (db *testDB) queryText(t *testing.T, sql string, args ...any) string {
	t.Helper()
	var s string
	require.NoError(t, db.pool.QueryRow(context.Background(), sql, args...).Scan(&s))
	return s
}

// fingerprint sums up every user (name, password hash, admin flag) and
// every session, so a test can tell that a refused request changed nothing.
func (db *testDB) fingerprint(t *testing.T) string {
	t.Helper()
	return db.queryText(t, `SELECT md5(
		coalesce((SELECT string_agg(username || ':' || password_hash || ':' || is_admin::text, ',' ORDER BY username) FROM pgsession.users), '')
		|| '|' ||
		coalesce((SELECT string_agg(id, ',' ORDER BY id) FROM pgsession.sessions), ''))`)
}

// moveLoginAttemptsOutOfTheWindow ages every failed login past the default 15-minute window.
func (db *testDB) moveLoginAttemptsOutOfTheWindow(t *testing.T) {
	t.Helper()
	db.exec(t, `UPDATE pgsession.login_attempts SET attempted_at = now() - interval '16 minutes',
		expires_at = now() - interval '1 minute'`)
}

// testAdminToken is an admin_token long enough to be accepted.
const testAdminToken = "test-admin-token-0123456789abcdefghijklmnop"
