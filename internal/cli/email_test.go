package cli

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
)

// `user email` sets an address as verified, refuses one another user has,
// clears with --clear, and `user list` shows it.
func TestUserEmail(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	executeOK(t, url, testPassword+"\n", "user", "add", "alice", "--password-stdin")
	executeOK(t, url, testPassword+"\n", "user", "add", "bob", "--password-stdin")
	s := openStore(t, url)
	ctx := context.Background()

	assert.Equal(t, "\"alice\" has the email address alice@example.com\n",
		executeOK(t, url, "", "user", "email", "alice", " Alice@Example.com"))
	alice, err := s.GetUserByName(ctx, "alice")
	require.NoError(t, err)
	assert.Equal(t, "alice@example.com", alice.Email)
	assert.True(t, alice.EmailVerified)

	r := executeDB(t, url, "", "user", "email", "bob", "ALICE@example.com")
	require.Error(t, r.err)
	assert.Equal(t, `another user has the address "alice@example.com"`, r.err.Error())
	r = executeDB(t, url, "", "user", "email", "bob", "not an address")
	require.Error(t, r.err)
	assert.Contains(t, r.err.Error(), "an email is a name, @ and a domain")
	r = executeDB(t, url, "", "user", "email", "carol", "carol@example.com")
	require.Error(t, r.err)
	assert.Equal(t, `no user "carol"`, r.err.Error())
	for _, args := range [][]string{{"user", "email"}, {"user", "email", "bob"}, {"user", "email", "bob", "a@b", "c"},
		{"user", "email", "bob", "a@b", "--clear"}} {
		assert.Error(t, executeDB(t, url, "", args...).err, "%v", args)
	}

	require.NoError(t, s.SetEmail(ctx, must(s.GetUserByName(ctx, "bob")).ID, "bob@example.com", false))
	rows := table(executeOK(t, url, "", "user", "list"))
	assert.Equal(t, "EMAIL", rows[0][2])
	assert.Equal(t, "alice@example.com", rows[1][2])
	assert.Equal(t, "bob@example.com (unverified)", rows[2][2])

	assert.Equal(t, "\"alice\" has no email address now\n", executeOK(t, url, "", "user", "email", "alice", "--clear"))
	alice, err = s.GetUserByName(ctx, "alice")
	require.NoError(t, err)
	assert.Empty(t, alice.Email)
	assert.Equal(t, "-", table(executeOK(t, url, "", "user", "list"))[1][2])
}
