package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/pgsession/caddy-pgsession/store"
)

func TestCreateFindListUsers(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, err := s.CreateUser(ctx, "Alice", "correct horse battery", true)
	require.NoError(t, err)
	assert.True(t, alice.IsAdmin)
	assert.Len(t, alice.ID, 36)
	newUser(t, s, "bob")

	_, err = s.CreateUser(ctx, "alice", "another password", false)
	assert.ErrorIs(t, err, store.ErrUserExists, "names are unique regardless of case")

	found, err := s.GetUserByName(ctx, "ALICE")
	require.NoError(t, err)
	assert.Equal(t, alice.ID, found.ID)
	assert.Equal(t, "Alice", found.Username, "the name keeps the case it was created with")

	byID, err := s.GetUser(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, "Alice", byID.Username)

	for _, name := range []string{"carol", "", strings.Repeat("x", 1000)} {
		_, err = s.GetUserByName(ctx, name)
		assert.ErrorIs(t, err, store.ErrUserNotFound)
	}
	_, err = s.GetUser(ctx, "nonsense")
	assert.ErrorIs(t, err, store.ErrUserNotFound)

	users, err := s.ListUsers(ctx)
	require.NoError(t, err)
	require.Len(t, users, 2)
	assert.Equal(t, "Alice", users[0].Username)
	assert.Equal(t, "bob", users[1].Username)
}

func TestUserInputIsValidated(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	cases := []struct{ name, username, password string }{
		{"empty username", "", "long enough password"},
		{"username with surrounding space", " alice", "long enough password"},
		{"username with newline", "ali\nce", "long enough password"},
		{"username with NUL", "ali\x00ce", "long enough password"},
		{"overlong username", strings.Repeat("a", store.MaxUsernameLength+1), "long enough password"},
		{"invalid UTF-8", "ali\xffce", "long enough password"},
		{"short password", "alice", "short"},
		{"overlong password", "alice", strings.Repeat("p", store.MaxPasswordLength+1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateUser(ctx, tc.username, tc.password, false)
			var inputErr *store.InputError
			require.ErrorAs(t, err, &inputErr)
			assert.NotEmpty(t, inputErr.Msg)
		})
	}
	users, err := s.ListUsers(ctx)
	require.NoError(t, err)
	assert.Empty(t, users)
}

func TestVerifyPassword(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")

	u, err := s.VerifyPassword(ctx, "Alice", "correct horse battery")
	require.NoError(t, err)
	assert.Equal(t, alice.ID, u.ID)

	for _, tc := range []struct{ username, password string }{
		{"alice", "wrong password"},
		{"alice", ""},
		{"nobody", "correct horse battery"},
		{"", "correct horse battery"},
		{"alice", strings.Repeat("p", 1<<20)},
	} {
		_, err := s.VerifyPassword(ctx, tc.username, tc.password)
		assert.ErrorIs(t, err, store.ErrInvalidCredentials, "%q", tc.username)
	}
}

func TestImportedBcryptUserCanLogInAndIsUpgraded(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	hash, err := bcrypt.GenerateFromPassword([]byte("hunter2hunter2"), bcrypt.MinCost)
	require.NoError(t, err)
	_, err = s.CreateUserWithHash(ctx, "legacy", string(hash), false)
	require.NoError(t, err)

	_, err = s.VerifyPassword(ctx, "legacy", "wrong password")
	assert.ErrorIs(t, err, store.ErrInvalidCredentials)
	assert.NotErrorIs(t, err, store.ErrUnknownUser, "the account exists")
	_, err = s.VerifyPassword(ctx, "hunter2hunter2", "x")
	assert.ErrorIs(t, err, store.ErrUnknownUser, "a password typed as the name is no account's")
	assert.ErrorIs(t, err, store.ErrInvalidCredentials, "and is a wrong login all the same")
	_, err = s.VerifyPassword(ctx, "legacy", "hunter2hunter2")
	require.NoError(t, err)

	var stored string
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT password_hash FROM pgsession.users WHERE username = 'legacy'`).Scan(&stored))
	assert.True(t, strings.HasPrefix(stored, "$argon2id$"), "a successful login upgrades a bcrypt hash to argon2id")
	_, err = s.VerifyPassword(ctx, "legacy", "hunter2hunter2")
	assert.NoError(t, err, "the upgraded hash still verifies")

	_, err = s.CreateUserWithHash(ctx, "broken", "plaintext", false)
	var inputErr *store.InputError
	assert.ErrorAs(t, err, &inputErr, "an unknown hash format is refused")
}
