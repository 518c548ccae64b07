package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// historyText is every row of the sign-in history as text, to look for
// what must never be stored.
func historyText(t *testing.T, s *store.Store) string {
	t.Helper()
	var text string
	require.NoError(t, s.Pool().QueryRow(context.Background(),
		`SELECT coalesce(string_agg(h::text, ' '), '') FROM pgsession.sign_in_history h`).Scan(&text))
	return text
}

func record(t *testing.T, s *store.Store, a store.SignInAttempt) {
	t.Helper()
	require.NoError(t, s.RecordSignIn(context.Background(), a))
}

// Attempts are recorded against the account a login would find, however
// its name was spelled; an attempt naming no account, such as a password
// typed into the name field, leaves nothing behind.
func TestSignInHistoryRecordsAttemptsOnExistingAccountsOnly(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	longAgent := "Mozilla/5.0 " + strings.Repeat("x", 400)

	record(t, s, store.SignInAttempt{Username: "ALICE", IP: "192.0.2.1", UserAgent: "curl/8.5.0", Outcome: store.SignInFailure})
	record(t, s, store.SignInAttempt{Username: "ａｌｉｃｅ", IP: "2001:db8::1", UserAgent: longAgent, Outcome: store.SignInThrottled})
	record(t, s, store.SignInAttempt{User: alice.ID, Username: "alice", IP: "198.51.100.7", Outcome: store.SignInSuccess})
	for _, name := range []string{"Tr0ub4dor&3-hunter2", "\xffalice", strings.Repeat("a", 1000), "", "alice\u200b"} {
		record(t, s, store.SignInAttempt{Username: name, IP: "203.0.113.9", UserAgent: "x", Outcome: store.SignInFailure})
	}
	record(t, s, store.SignInAttempt{User: "not-a-uuid", Outcome: store.SignInSuccess})

	history, err := s.SignInHistory(ctx, alice.ID, 50)
	require.NoError(t, err)
	require.Len(t, history, 3, "only alice's three attempts")
	assert.Equal(t, []string{store.SignInSuccess, store.SignInThrottled, store.SignInFailure},
		[]string{history[0].Outcome, history[1].Outcome, history[2].Outcome}, "newest first")
	assert.Equal(t, "198.51.100.7", history[0].IP)
	assert.Equal(t, "2001:db8::1", history[1].IP)
	assert.Equal(t, longAgent[:store.MaxUserAgentLength], history[1].UserAgent, "a long user agent is cut")
	assert.Equal(t, "curl/8.5.0", history[2].UserAgent)
	assert.False(t, history[0].At.Before(history[1].At) || history[1].At.Before(history[2].At))
	assert.WithinDuration(t, time.Now(), history[0].At, time.Minute)

	none, err := s.SignInHistory(ctx, bob.ID, 50)
	require.NoError(t, err)
	assert.Empty(t, none)
	assert.Equal(t, 3, count(t, s, `SELECT count(*) FROM pgsession.sign_in_history`))
	assert.NotContains(t, historyText(t, s), "Tr0ub4dor", "a name that is no account is never stored")
	assert.NotContains(t, historyText(t, s), "203.0.113.9")

	latest, err := s.SignInHistory(ctx, alice.ID, 2)
	require.NoError(t, err)
	assert.Equal(t, history[:2], latest, "the limit keeps the newest")
}

// A name from before the username profile is found as VerifyPassword finds
// it: by its exact spelling, ignoring case.
func TestSignInHistoryFindsLegacyNames(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	hash, err := store.HashPassword("correct horse battery")
	require.NoError(t, err)
	exec(t, s, `INSERT INTO pgsession.users (username, password_hash) VALUES ('carol`+"\u200b"+`', $1)`, hash)
	carol, err := s.GetUserByName(ctx, "CAROL\u200b")
	require.NoError(t, err)

	record(t, s, store.SignInAttempt{Username: "CAROL\u200b", IP: "192.0.2.1", Outcome: store.SignInFailure})
	history, err := s.SignInHistory(ctx, carol.ID, 50)
	require.NoError(t, err)
	assert.Len(t, history, 1)
}

// The cleanup deletes attempts older than the retention and keeps the
// rest; deleting a user deletes their history.
func TestSignInHistoryIsTrimmedAndGoesWithItsUser(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{HistoryRetention: 30 * 24 * time.Hour})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	for _, u := range []*store.User{alice, alice, alice, bob} {
		record(t, s, store.SignInAttempt{User: u.ID, IP: "192.0.2.1", Outcome: store.SignInSuccess})
	}
	exec(t, s, `UPDATE pgsession.sign_in_history SET attempted_at = now() - interval '31 days'
		WHERE id = (SELECT min(id) FROM pgsession.sign_in_history)`)
	exec(t, s, `UPDATE pgsession.sign_in_history SET attempted_at = now() - interval '29 days'
		WHERE id = (SELECT max(id) FROM pgsession.sign_in_history WHERE user_id = $1)`, alice.ID)

	c, ran, err := s.RunCleanup(ctx, "test", 0)
	require.NoError(t, err)
	require.True(t, ran)
	assert.Equal(t, int64(1), c.SignIns, "the attempt older than 30 days goes")
	history, err := s.SignInHistory(ctx, alice.ID, 50)
	require.NoError(t, err)
	assert.Len(t, history, 2, "the 29-day-old one and today's stay")

	require.NoError(t, s.DeleteUser(ctx, "alice"))
	assert.Zero(t, count(t, s, `SELECT count(*) FROM pgsession.sign_in_history WHERE user_id = $1`, alice.ID))
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM pgsession.sign_in_history`), "bob's stays")
}

// With NoHistory nothing is recorded, and the cleanup deletes what an
// earlier configuration recorded.
func TestNoHistoryRecordsNothingAndDeletesWhatWasKept(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	keeping := newStoreAt(t, url, store.Options{})
	off := newStoreAt(t, url, store.Options{HistoryRetention: store.NoHistory})
	alice := newUser(t, keeping, "alice")
	record(t, keeping, store.SignInAttempt{User: alice.ID, Outcome: store.SignInSuccess})
	record(t, off, store.SignInAttempt{User: alice.ID, Outcome: store.SignInSuccess})
	record(t, off, store.SignInAttempt{Username: "alice", Outcome: store.SignInFailure})
	assert.Equal(t, 1, count(t, off, `SELECT count(*) FROM pgsession.sign_in_history`))

	n, err := off.TrimSignInHistory(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	assert.Zero(t, count(t, off, `SELECT count(*) FROM pgsession.sign_in_history`))
}
