package cli

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

func TestUserHistory(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice := addUser(t, s, "alice")
	addUser(t, s, "bob")
	for _, a := range []store.SignInAttempt{
		{Username: "alice", IP: "192.0.2.1", UserAgent: "curl/8.5.0", Outcome: store.SignInFailure, Factor: store.FactorPassword},
		{User: alice.ID, IP: "2001:db8::1", UserAgent: "evil\x1b[2J\tagent", Outcome: store.SignInSuccess, Factor: store.FactorPasskey},
		{Username: "ALICE", Outcome: store.SignInThrottled},
	} {
		require.NoError(t, s.RecordSignIn(ctx, a))
	}
	signIns, err := s.SignInHistory(ctx, alice.ID, 50)
	require.NoError(t, err)

	out := executeOK(t, url, "", "user", "history", "Alice")
	rows := table(out)
	require.Len(t, rows, 4, out)
	assert.Equal(t, []string{"TIME", "OUTCOME", "FACTOR", "IP", "USER AGENT"}, rows[0])
	assert.Equal(t, []string{formatTime(signIns[0].At), "throttled", "-", "-", "-"}, rows[1], "newest first; nothing known shows as -")
	assert.Equal(t, []string{formatTime(signIns[1].At), "success", "passkey", "2001:db8::1", "evil?[2J?agent"}, rows[2],
		"control characters in a user agent are not sent to the terminal; the factor as the API names it")
	assert.Equal(t, []string{formatTime(signIns[2].At), "failure", "password", "192.0.2.1", "curl/8.5.0"}, rows[3])

	assert.Len(t, table(executeOK(t, url, "", "user", "history", "alice", "--limit", "1")), 2, "--limit 1: the header and one row")

	r := executeDB(t, url, "", "user", "history", "alice", "--limit", "0")
	require.Error(t, r.err)
	assert.Equal(t, "--limit must be a positive whole number", r.err.Error())
	r = executeDB(t, url, "", "user", "history", "carol")
	require.Error(t, r.err)
	assert.Equal(t, `no user "carol"`, r.err.Error())
	r = executeDB(t, url, "", "user", "history", "bob")
	require.NoError(t, r.err)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "no sign-ins recorded for \"bob\"\n", r.stderr)
}
