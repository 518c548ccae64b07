package store_test

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

func TestCountSessionsAndTopUsers(t *testing.T) {
	t.Parallel()
	s := newStore(t, store.Options{})
	ctx := context.Background()
	alice, bob, carol, dave, erin := newUser(t, s, "alice"), newUser(t, s, "bob"), newUser(t, s, "carol"),
		newUser(t, s, "dave"), newUser(t, s, "erin")
	for range 3 {
		login(t, s, alice)
	}
	login(t, s, bob)
	login(t, s, erin)
	ended := login(t, s, carol)
	exec(t, s, `UPDATE pgsession.sessions SET expires_at = now() - interval '1 second' WHERE id = $1`,
		string(store.HashToken(ended)))
	idle := login(t, s, dave)
	exec(t, s, `UPDATE pgsession.sessions SET idle_expires_at = now() - interval '1 second' WHERE id = $1`,
		string(store.HashToken(idle)))
	// "Today" starts at midnight UTC: one of alice's sessions is from the
	// second before, the others from midnight itself.
	exec(t, s, `UPDATE pgsession.sessions SET created_at = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`)
	exec(t, s, `UPDATE pgsession.sessions SET created_at = created_at - interval '1 second'
		WHERE id = (SELECT id FROM pgsession.sessions WHERE user_id = $1 LIMIT 1)`, string(alice.ID))

	counts, err := s.CountSessions(ctx)
	require.NoError(t, err)
	assert.Equal(t, store.SessionCounts{Active: 5, Expired: 2, CreatedToday: 6}, counts)

	top, err := s.TopUsers(ctx, 3)
	require.NoError(t, err)
	assert.Equal(t, []store.UserSessions{{Username: "alice", Sessions: 3}, {Username: "bob", Sessions: 1},
		{Username: "erin", Sessions: 1}}, top, "most sessions first, then by name; ended sessions do not count")
	top, err = s.TopUsers(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, []store.UserSessions{{Username: "alice", Sessions: 3}}, top)

	_, err = s.CleanupExpiredSessions(ctx)
	require.NoError(t, err)
	counts, err = s.CountSessions(ctx)
	require.NoError(t, err)
	assert.Equal(t, store.SessionCounts{Active: 5, Expired: 0, CreatedToday: 4}, counts,
		"the cleanup deletes exactly what counts as expired")
}

func TestCountSessionsOfAnEmptyTable(t *testing.T) {
	t.Parallel()
	s := newStore(t, store.Options{})
	counts, err := s.CountSessions(context.Background())
	require.NoError(t, err)
	assert.Zero(t, counts)
	top, err := s.TopUsers(context.Background(), 10)
	require.NoError(t, err)
	assert.Empty(t, top)
}

func TestQueryTimerNamesTheStatements(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	took := map[string]int{}
	timer := store.NewQueryTimer(func(statement string, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		took[statement]++
		assert.Positive(t, d)
	})
	cfg, mode, err := store.PoolConfig(pgtest.NewDatabase(t), "test")
	require.NoError(t, err)
	mode.SetPooled(false)
	cfg.ConnConfig.Tracer = timer
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	// A schema of its own: statement names hold for every schema.
	s, err := store.New(pool, store.Options{Schema: "timed", Argon2: cheapArgon2})
	require.NoError(t, err)
	_, err = s.Migrate(context.Background())
	require.NoError(t, err)

	token := login(t, s, newUser(t, s, "alice"))
	sess, err := s.GetSession(context.Background(), token)
	require.NoError(t, err)
	require.NotNil(t, sess)
	_, err = s.CountSessions(context.Background())
	require.NoError(t, err)

	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{"create_user", "create_session", "get_session", "count_sessions"} {
		assert.Equal(t, 1, took[name], "%s in %v", name, took)
	}
	assert.Positive(t, took["other"], "the migrations are other statements")
	for name := range took {
		assert.Regexp(t, `^[a-z_]+$`, name, "a name, never SQL")
	}
	assert.Equal(t, "other", store.StatementName("SELECT 1"))
}

// Every statement's label is snake case as a person writes it, an
// initialism one word: get_totp, not get_t_o_t_p.
func TestEveryStatementHasAReadableName(t *testing.T) {
	t.Parallel()
	names := store.StatementNames()
	require.Greater(t, len(names), 50, "every statement of the store")
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	seen := map[string]bool{}
	for _, name := range names {
		assert.Regexp(t, snake, name)
		for word := range strings.SplitSeq(name, "_") {
			assert.Greater(t, len(word), 1, "%s: no word of one letter", name)
		}
		assert.False(t, seen[name], "%s names one statement", name)
		seen[name] = true
	}
	for _, name := range []string{"get_totp", "accept_totp_step", "set_totp_secret", "sign_in_by_id", "get_user_by_id",
		"webauthn_handle", "user_by_webauthn_handle", "check_session", "get_session"} {
		assert.True(t, seen[name], "%s is a statement's name", name)
	}
}
