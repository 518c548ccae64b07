package cli

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
	"github.com/pgsession/caddy-pgsession/store"
)

func TestStats(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	alice, bob, carol := addUser(t, s, "alice"), addUser(t, s, "bob"), addUser(t, s, "carol")
	newSession(t, s, alice, "", "")
	newSession(t, s, alice, "", "")
	yesterday := newSession(t, s, bob, "", "")
	ended := newSession(t, s, carol, "", "")
	execSQL(t, url, `UPDATE pgsession.sessions SET created_at = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
		- interval '1 second' WHERE id = $1`, string(store.HashToken(yesterday)))
	execSQL(t, url, `UPDATE pgsession.sessions SET expires_at = now() - interval '1 second' WHERE id = $1`,
		string(store.HashToken(ended)))

	assert.Equal(t, [][]string{
		{"active sessions", "3"},
		{"expired sessions, not yet cleaned up", "1"},
		{"created today (since 00:00 UTC)", "3"},
		nil,
		{"USERNAME", "LIVE SESSIONS"},
		{"alice", "2"},
		{"bob", "1"},
	}, table(executeOK(t, url, "", "stats")))

	assert.JSONEq(t, `{"active_sessions": 3, "expired_sessions": 1, "created_today": 3,
		"top_users": [{"username": "alice", "sessions": 2}]}`, executeOK(t, url, "", "stats", "--json", "--top", "1"))
}

func TestStatsOfAnEmptyDatabase(t *testing.T) {
	t.Parallel()
	url, _ := newDatabase(t)
	assert.Equal(t, [][]string{
		{"active sessions", "0"},
		{"expired sessions, not yet cleaned up", "0"},
		{"created today (since 00:00 UTC)", "0"},
	}, table(executeOK(t, url, "", "stats")), "no user list without live sessions")
	got := webtest.Decode[map[string]any](t, executeOK(t, url, "", "stats", "--json"))
	assert.Equal(t, []any{}, got["top_users"], "an empty list, not null")
}

func TestStatsTopIsBounded(t *testing.T) {
	t.Parallel()
	for _, top := range []string{"0", "-1", "1001"} {
		r := execute(t, "", "stats", "--top", top)
		require.Error(t, r.err, top)
		assert.Equal(t, "--top must be between 1 and 1000", r.err.Error())
	}
}

// execSQL runs one statement on the database at url, to set up what no
// command does, such as a session from yesterday.
func execSQL(t *testing.T, url, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}
