package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/internal/pgtest/migrated"
	"github.com/pgsession/caddy-pgsession/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newStore returns a store on a fresh database with the schema installed: a
// copy of the one this test binary migrated, which is much quicker than
// migrating each test's. opts.Schema must be the default, the copy's.
func newStore(tb testing.TB, opts store.Options) *store.Store {
	tb.Helper()
	return openStore(tb, migrated.NewDatabase(tb), opts)
}

// cheapArgon2 makes password hashes cost next to nothing, so tests that
// create users and log in by the dozen do not spend seconds hashing; the
// tests of hashing itself use the real cost.
var cheapArgon2 = store.Argon2Params{Memory: 64, Passes: 1}

// newStoreAt returns a migrated store on the database at url, hashing
// cheaply unless opts says otherwise.
func newStoreAt(tb testing.TB, url string, opts store.Options) *store.Store {
	tb.Helper()
	s := openStore(tb, url, opts)
	_, err := s.Migrate(context.Background())
	require.NoError(tb, err)
	return s
}

// openStore returns a store on the database at url as it is, hashing
// cheaply unless opts says otherwise.
func openStore(tb testing.TB, url string, opts store.Options) *store.Store {
	tb.Helper()
	if opts.Argon2 == (store.Argon2Params{}) {
		opts.Argon2 = cheapArgon2
	}
	s, err := store.New(newPool(tb, url), opts)
	require.NoError(tb, err)
	return s
}

func newPool(tb testing.TB, url string) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	return pool
}

func newUser(tb testing.TB, s *store.Store, name string) *store.User {
	tb.Helper()
	u, err := s.CreateUser(context.Background(), name, "correct horse battery", false)
	require.NoError(tb, err)
	return u
}

func login(tb testing.TB, s *store.Store, u *store.User) string {
	tb.Helper()
	token, _, err := s.CreateSession(context.Background(), store.SessionParams{User: *u, Lifetime: time.Hour})
	require.NoError(tb, err)
	return token
}

func exec(tb testing.TB, s *store.Store, sql string, args ...any) int64 {
	tb.Helper()
	tag, err := s.Pool().Exec(context.Background(), sql, args...)
	require.NoError(tb, err)
	return tag.RowsAffected()
}

func count(tb testing.TB, s *store.Store, sql string, args ...any) int {
	tb.Helper()
	var n int
	require.NoError(tb, s.Pool().QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func TestSessionCreateGetDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")

	token, created, err := s.CreateSession(ctx, store.SessionParams{
		User: *alice, Lifetime: 7 * 24 * time.Hour, UserAgent: "Firefox", IP: "192.0.2.1",
	})
	require.NoError(t, err)
	assert.Len(t, token, store.TokenLength)
	assert.True(t, store.ValidToken(token))
	assert.Equal(t, store.HashToken(token), created.ID)
	assert.Equal(t, "alice", created.User.Username)
	assert.WithinDuration(t, time.Now().Add(7*24*time.Hour), created.ExpiresAt, time.Minute)

	got, err := s.GetSession(ctx, token)
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Equal(t, alice.ID, got.User.ID)
	assert.Equal(t, "alice", got.User.Username)
	assert.Equal(t, "Firefox", got.UserAgent)
	assert.Equal(t, "192.0.2.1", got.IP)

	require.NoError(t, s.DeleteSession(ctx, token))
	got, err = s.GetSession(ctx, token)
	require.NoError(t, err)
	assert.Nil(t, got, "a deleted session must be gone")
	assert.NoError(t, s.DeleteSession(ctx, token), "deleting twice is not an error")
}

func TestEveryLoginGetsANewToken(t *testing.T) {
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	seen := map[string]bool{}
	for range 50 {
		token := login(t, s, alice)
		require.False(t, seen[token], "token issued twice")
		seen[token] = true
	}
}

func TestCreateSessionForUnknownUser(t *testing.T) {
	s := newStore(t, store.Options{})
	for _, id := range []string{"00000000-0000-0000-0000-000000000000", "not-a-uuid", ""} {
		_, _, err := s.CreateSession(context.Background(), store.SessionParams{User: store.User{ID: store.UserID(id)}, Lifetime: time.Hour})
		assert.ErrorIs(t, err, store.ErrUserNotFound, "user id %q", id)
	}
}

func TestExpiredSessionIsAbsentAndCleanedUp(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	expired := login(t, s, alice)
	live := login(t, s, alice)
	exec(t, s, `UPDATE pgsession.sessions SET expires_at = now() - interval '1 second' WHERE id = $1`, store.HashToken(expired))

	got, err := s.GetSession(ctx, expired)
	require.NoError(t, err)
	assert.Nil(t, got, "an expired session must not be returned")

	sessions, err := s.GetUserSessions(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, sessions, 1, "listing shows only live sessions")
	assert.Equal(t, store.HashToken(live), sessions[0].ID)

	n, err := s.CleanupExpiredSessions(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	assert.Equal(t, 0, count(t, s, `SELECT count(*) FROM pgsession.sessions WHERE id = $1`, store.HashToken(expired)))
	got, err = s.GetSession(ctx, live)
	require.NoError(t, err)
	assert.NotNil(t, got, "cleanup must not touch live sessions")
}

func TestCleanupOfTenThousandExpiredSessionsRunsInBatches(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{CleanupBatchSize: 1000})
	alice := newUser(t, s, "alice")
	var live []string
	for range 5 {
		live = append(live, login(t, s, alice))
	}
	exec(t, s, `INSERT INTO pgsession.sessions (id, user_id, expires_at)
		SELECT md5(i::text), $1, now() - interval '1 hour' FROM generate_series(1, 10000) AS i`, alice.ID)

	// A statement-level trigger counts the DELETE statements cleanup runs.
	exec(t, s, `CREATE TABLE public.delete_statements (n int NOT NULL)`)
	exec(t, s, `CREATE FUNCTION public.count_delete() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN INSERT INTO public.delete_statements VALUES (1); RETURN NULL; END $$`)
	exec(t, s, `CREATE TRIGGER count_delete AFTER DELETE ON pgsession.sessions
		FOR EACH STATEMENT EXECUTE FUNCTION public.count_delete()`)

	n, err := s.CleanupExpiredSessions(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(10000), n)
	assert.GreaterOrEqual(t, count(t, s, `SELECT count(*) FROM public.delete_statements`), 10,
		"10,000 rows in batches of 1,000 take at least ten statements")
	assert.Equal(t, 5, count(t, s, `SELECT count(*) FROM pgsession.sessions`))
	for _, token := range live {
		got, err := s.GetSession(ctx, token)
		require.NoError(t, err)
		assert.NotNil(t, got)
	}
}

func TestUserSessionsListAndDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	a1, a2 := login(t, s, alice), login(t, s, alice)
	b1 := login(t, s, bob)

	sessions, err := s.GetUserSessions(ctx, alice.ID)
	require.NoError(t, err)
	ids := []store.SessionID{}
	for _, sess := range sessions {
		ids = append(ids, sess.ID)
		assert.Equal(t, "alice", sess.User.Username)
	}
	assert.ElementsMatch(t, []store.SessionID{store.HashToken(a1), store.HashToken(a2)}, ids)

	n, err := s.DeleteUserSessions(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n)
	for _, token := range []string{a1, a2} {
		got, err := s.GetSession(ctx, token)
		require.NoError(t, err)
		assert.Nil(t, got)
	}
	got, err := s.GetSession(ctx, b1)
	require.NoError(t, err)
	assert.NotNil(t, got, "another user's session must survive")

	sessions, err = s.GetUserSessions(ctx, alice.ID)
	require.NoError(t, err)
	assert.Empty(t, sessions)
}

func TestDeletingAUserEndsTheirSessions(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	token := login(t, s, alice)

	require.NoError(t, s.DeleteUser(ctx, "ALICE"), "names match regardless of case")
	got, err := s.GetSession(ctx, token)
	require.NoError(t, err)
	assert.Nil(t, got)
	assert.Equal(t, 0, count(t, s, `SELECT count(*) FROM pgsession.sessions`))
	assert.ErrorIs(t, s.DeleteUser(ctx, "alice"), store.ErrUserNotFound)
}

func TestChangePasswordEndsOtherSessionsOnly(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	current, other1, other2 := login(t, s, alice), login(t, s, alice), login(t, s, alice)
	bobs := login(t, s, bob)

	ended, err := s.ChangePassword(ctx, alice.ID, "a whole new password", current)
	require.NoError(t, err)
	assert.Equal(t, int64(2), ended)

	for token, alive := range map[string]bool{current: true, other1: false, other2: false, bobs: true} {
		got, err := s.GetSession(ctx, token)
		require.NoError(t, err)
		assert.Equal(t, alive, got != nil)
	}
	_, err = s.VerifyPassword(ctx, "alice", "correct horse battery")
	assert.ErrorIs(t, err, store.ErrInvalidCredentials, "the old password must stop working")
	u, err := s.VerifyPassword(ctx, "alice", "a whole new password")
	require.NoError(t, err)
	assert.Equal(t, alice.ID, u.ID)

	// With no session to keep, a password reset from the shell ends them all.
	ended, err = s.ChangePassword(ctx, alice.ID, "yet another password", "")
	require.NoError(t, err)
	assert.Equal(t, int64(1), ended)

	_, err = s.ChangePassword(ctx, "00000000-0000-0000-0000-000000000000", "long enough password", "")
	assert.ErrorIs(t, err, store.ErrUserNotFound)
	var inputErr *store.InputError
	_, err = s.ChangePassword(ctx, alice.ID, "short", "")
	assert.ErrorAs(t, err, &inputErr)
}

func TestDatabaseHoldsNoRawToken(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	token := login(t, s, alice)

	// Every column of every row, as text, must not contain the token.
	assert.Equal(t, 0, count(t, s, `SELECT count(*) FROM pgsession.sessions s WHERE strpos(s::text, $1) > 0`, token))
	assert.Equal(t, 0, count(t, s, `SELECT count(*) FROM pgsession.users u WHERE strpos(u::text, $1) > 0`, token))
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM pgsession.sessions WHERE id = encode(sha256(convert_to($1, 'UTF8')), 'hex')`, token),
		"the stored id is the hex SHA-256 of the cookie value")
	got, err := s.GetSession(ctx, token)
	require.NoError(t, err)
	assert.NotContains(t, got.ID, token)
}

func TestMalformedTokensAreNotFoundWithoutAQuery(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	valid := login(t, s, alice)

	// A store whose pool is closed fails any query, so a nil error below proves no query ran.
	closedPool := newPool(t, pgtest.NewDatabase(t))
	closedPool.Close()
	offline, err := store.New(closedPool, store.Options{})
	require.NoError(t, err)

	cases := map[string]string{
		"empty":                "",
		"too short":            valid[:store.TokenLength-1],
		"too long":             valid + "A",
		"non-base64 character": valid[:store.TokenLength-1] + "!",
		"standard base64 plus": valid[:store.TokenLength-1] + "+",
		"padding bits set":     valid[:store.TokenLength-1] + "B",
		"space":                " " + valid[1:],
		"one megabyte":         strings.Repeat("A", 1<<20),
		"hash instead":         string(store.HashToken(valid)),
		"non-ascii":            strings.Repeat("é", store.TokenLength/2) + "A",
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			assert.False(t, store.ValidToken(token))
			for _, st := range []*store.Store{s, offline} {
				got, err := st.GetSession(ctx, token)
				assert.NoError(t, err)
				assert.Nil(t, got)
				assert.NoError(t, st.DeleteSession(ctx, token))
			}
		})
	}
	_, err = offline.GetSession(ctx, valid)
	assert.Error(t, err, "a well-formed token does query, and the closed pool fails it")
}

func TestDatabaseDownIsAnErrorNotNotFound(t *testing.T) {
	srv := pgtest.NewServer(t)
	pool := newPool(t, srv.NewDatabase(t))
	s, err := store.New(pool, store.Options{})
	require.NoError(t, err)
	ctx := context.Background()
	_, err = s.Migrate(ctx)
	require.NoError(t, err)
	alice := newUser(t, s, "alice")
	token := login(t, s, alice)

	srv.Stop(t)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := s.GetSession(ctx, token)
	assert.Nil(t, got)
	require.Error(t, err, "a database that is down must not look like a missing session")
	_, err = s.VerifyPassword(ctx, "alice", "correct horse battery")
	assert.Error(t, err)
	assert.False(t, errors.Is(err, store.ErrInvalidCredentials), "a down database is not a wrong password")
	_, err = s.CleanupExpiredSessions(ctx)
	assert.Error(t, err)

	srv.Start(t)
	require.Eventually(t, func() bool {
		got, err := s.GetSession(context.Background(), token)
		return err == nil && got != nil
	}, 20*time.Second, 50*time.Millisecond, "the session must be back with the database")
}

func TestConcurrentUseIsSafe(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			token, _, err := s.CreateSession(ctx, store.SessionParams{User: *alice, Lifetime: time.Hour})
			if err != nil {
				errs <- err
				return
			}
			if got, err := s.GetSession(ctx, token); err != nil || got == nil {
				errs <- errors.New("session created concurrently was not found")
				return
			}
			errs <- s.DeleteSession(ctx, token)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}

func TestGetSessionIsOneIndexLookup(t *testing.T) {
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	// Enough sessions that the planner would notice a missing index.
	exec(t, s, `INSERT INTO pgsession.sessions (id, user_id, expires_at)
		SELECT md5(i::text), $1, now() + interval '1 hour' FROM generate_series(1, 20000) AS i`, alice.ID)
	exec(t, s, `ANALYZE pgsession.sessions`)
	exec(t, s, `ANALYZE pgsession.users`)
	rows, err := s.Pool().Query(context.Background(), `EXPLAIN SELECT s.id FROM pgsession.sessions s
		JOIN pgsession.users u ON u.id = s.user_id WHERE s.id = $1 AND s.expires_at > now()`, store.HashToken("x"))
	require.NoError(t, err)
	var plan []string
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan = append(plan, line)
	}
	assert.Contains(t, strings.Join(plan, "\n"), "Index Scan using sessions_pkey", "the lookup by token hash uses the primary key")
}
