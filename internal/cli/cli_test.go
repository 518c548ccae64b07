package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/migrations"
	"github.com/pgsession/caddy-pgsession/store"
)

// testArgon2 is a cheap argon2id cost for the tests' users: at the real cost
// every hash takes 300 ms under -race, and these tests check what the commands
// do, not what a hash costs (TestRealArgon2CostByDefault checks the real one).
var testArgon2 = store.Argon2Params{Memory: 64, Passes: 1}

// TestMain makes the users the commands create cheap to hash (see testArgon2)
// and stops the throwaway PostgreSQL of this package's tests when they end.
func TestMain(m *testing.M) {
	storeOptions.Argon2 = testArgon2
	pgtest.Main(m)
}

const testPassword = "correct horse battery"

// result is what one run of the pg-session command did.
type result struct {
	stdout, stderr string
	err            error
}

// all is everything the command showed, for checking what it must never show.
func (r result) all() string {
	s := r.stdout + r.stderr
	if r.err != nil {
		s += r.err.Error()
	}
	return s
}

// execute runs `caddy pg-session ARGS...` in process with stdin as its input.
func execute(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := newCommand()
	var stdout, stderr bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	err := cmd.Execute()
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// executeDB runs the command against the database at url.
func executeDB(t *testing.T, url, stdin string, args ...string) result {
	t.Helper()
	return execute(t, stdin, append([]string{"--database-url", url}, args...)...)
}

// executeOK runs the command against url and fails the test if it fails.
func executeOK(t *testing.T, url, stdin string, args ...string) string {
	t.Helper()
	r := executeDB(t, url, stdin, args...)
	require.NoError(t, r.err, "pg-session %v; stderr: %s", args, r.stderr)
	return r.stdout
}

// openStore opens a store on url with the schema installed, to set up and
// check what the commands do.
func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := store.New(pool, store.Options{Argon2: testArgon2})
	require.NoError(t, err)
	_, err = s.Migrate(context.Background())
	require.NoError(t, err)
	return s
}

// newDatabase returns the URL of a new database with the schema installed,
// and a store on it to set up and check what the commands do.
func newDatabase(t *testing.T) (string, *store.Store) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	return url, openStore(t, url)
}

// addUser creates a user who is not an admin, with testPassword.
func addUser(t *testing.T, s *store.Store, name string) *store.User {
	t.Helper()
	u, err := s.CreateUser(context.Background(), name, testPassword, false)
	require.NoError(t, err)
	return u
}

func newSession(t *testing.T, s *store.Store, u *store.User, ua, ip string) string {
	t.Helper()
	token, _, err := s.CreateSession(context.Background(), store.SessionParams{User: *u, Lifetime: time.Hour, UserAgent: ua, IP: ip})
	require.NoError(t, err)
	return token
}

func isLive(t *testing.T, s *store.Store, token string) bool {
	t.Helper()
	sess, err := s.GetSession(context.Background(), token)
	require.NoError(t, err)
	return sess != nil
}

// table splits a tabwriter table into rows of cells; cells are separated by
// two or more spaces.
func table(out string) [][]string {
	var rows [][]string
	for line := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
		var cells []string
		for cell := range strings.SplitSeq(line, "  ") {
			if cell = strings.TrimSpace(cell); cell != "" {
				cells = append(cells, cell)
			}
		}
		rows = append(rows, cells)
	}
	return rows
}

// TestRealArgon2CostByDefault runs without t.Parallel on purpose: it sets
// storeOptions back to the zero value, and the parallel tests, which read it,
// only start once the sequential ones have finished.
func TestRealArgon2CostByDefault(t *testing.T) {
	saved := storeOptions
	storeOptions = store.Options{}
	t.Cleanup(func() { storeOptions = saved })
	url := pgtest.NewDatabase(t)

	executeOK(t, url, testPassword+"\n", "user", "add", "alice", "--password-stdin")

	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	var hash string
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT password_hash FROM pgsession.users WHERE username = 'alice'`).Scan(&hash))
	assert.True(t, strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$"), "the store's default cost, not the tests': %s", hash)
}

func TestMigrateOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	all, err := migrations.All()
	require.NoError(t, err)

	out := executeOK(t, url, "", "migrate")
	assert.Equal(t, "applied "+count(len(all), "migration")+" to schema \"pgsession\"\n", out)
	assert.Equal(t, "applied 0 migrations to schema \"pgsession\": it is up to date\n", executeOK(t, url, "", "migrate"))

	s := openStore(t, url)
	users, err := s.ListUsers(context.Background())
	require.NoError(t, err)
	assert.Empty(t, users)
}

func TestMigrateOtherSchema(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	assert.Contains(t, executeOK(t, url, "", "--schema", "auth", "migrate"), `to schema "auth"`)
	executeOK(t, url, testPassword+"\n", "--schema", "auth", "user", "add", "alice", "--password-stdin")

	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	var inAuth, inDefault bool
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT to_regclass('auth.users') IS NOT NULL, to_regclass('pgsession.users') IS NOT NULL`).Scan(&inAuth, &inDefault))
	assert.True(t, inAuth)
	assert.False(t, inDefault, "--schema is the only schema used")

	r := executeDB(t, url, "", "--schema", "Bad-Name", "migrate")
	require.Error(t, r.err)
	assert.Contains(t, r.err.Error(), `schema name "Bad-Name" must be lowercase`)
}

func TestDatabaseURLFromEnvironment(t *testing.T) {
	t.Setenv(databaseURLEnv, "")
	r := execute(t, "", "user", "list")
	require.Error(t, r.err)
	assert.Equal(t, "no database given: pass --database-url or set DATABASE_URL", r.err.Error())
	assert.Equal(t, "Error: no database given: pass --database-url or set DATABASE_URL\n", r.stderr)
	r = execute(t, "", "migrate")
	require.Error(t, r.err)
	assert.Equal(t, "no database given: pass --database-url or set DATABASE_URL", r.err.Error())

	url := pgtest.NewDatabase(t)
	t.Setenv(databaseURLEnv, url)
	r = execute(t, testPassword+"\n", "user", "add", "alice", "--password-stdin")
	require.NoError(t, r.err)
	assert.Equal(t, "created user \"alice\"\n", r.stdout)

	t.Setenv(databaseURLEnv, "postgres://u@127.0.0.1:1/nowhere")
	r = executeDB(t, url, "", "user", "list")
	require.NoError(t, r.err, "--database-url wins over DATABASE_URL")
	assert.Contains(t, r.stdout, "alice")
}

func TestDatabaseDownDoesNotShowPassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cretpw"
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"closed port", "postgres://u:" + secret + "@127.0.0.1:1/db?sslmode=disable",
			[]string{"connecting to the database at 127.0.0.1:1/db:", "user=u database=db", "127.0.0.1:1"}},
		{"closed port, password in the query", "postgres://u@127.0.0.1:1/db?sslmode=disable&password=" + secret,
			[]string{"127.0.0.1:1/db"}},
		{"password that is also the database name", "postgres://u:" + secret + "@127.0.0.1:1/" + secret + "?sslmode=disable",
			[]string{"127.0.0.1:1/xxxxx"}},
		{"key=value form", "host=127.0.0.1 port=1 dbname=db user=u password=" + secret + " sslmode=disable",
			[]string{"127.0.0.1:1/db"}},
		{"malformed port", "postgres://u:" + secret + "@127.0.0.1:notaport/db",
			[]string{"the database URL cannot be parsed"}},
		{"malformed, unencoded slash in the password", "postgres://u:" + secret + "/x@127.0.0.1:1/db",
			[]string{"the database URL cannot be parsed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, args := range [][]string{
				{"migrate"},
				{"user", "list"},
				{"user", "add", "alice", "--password-stdin"},
				{"sessions", "revoke", "alice"},
			} {
				start := time.Now()
				r := executeDB(t, tc.url, testPassword+"\n", args...)
				require.Error(t, r.err, args)
				assert.Less(t, time.Since(start), 20*time.Second)
				assert.NotContains(t, r.all(), secret, args)
				for _, want := range tc.want {
					assert.Contains(t, r.err.Error(), want, args)
				}
				assert.Equal(t, "Error: "+r.err.Error()+"\n", r.stderr, "the error once, and no usage")
				assert.Empty(t, r.stdout)
			}
		})
	}
}

func TestUnknownSubcommand(t *testing.T) {
	t.Parallel()
	r := execute(t, "", "user", "frob")
	require.Error(t, r.err)
	assert.Equal(t, `unknown command "frob" for "pg-session user"`, r.err.Error())
	r = execute(t, "", "sessions")
	require.NoError(t, r.err, "a group without a command shows its help")
	assert.Contains(t, r.stdout, "revoke")
}
