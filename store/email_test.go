package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// An address is stored trimmed and lower-cased, is one user's, and is read
// with the user wherever a user is read.
func TestEmailIsUniqueAfterNormalisation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	assert.Empty(t, alice.Email, "none at first")

	require.NoError(t, s.SetEmail(ctx, alice.ID, "  Alice@Example.COM ", true))
	got := must(s.GetUser(ctx, alice.ID))
	assert.Equal(t, "alice@example.com", got.Email)
	assert.True(t, got.EmailVerified)
	assert.Equal(t, "alice@example.com", must(s.GetUserByName(ctx, "alice")).Email)
	users := must(s.ListUsers(ctx))
	assert.Equal(t, []string{"alice@example.com", ""}, []string{users[0].Email, users[1].Email})
	sess := must(s.GetSession(ctx, login(t, s, alice)))
	assert.Equal(t, "alice@example.com", sess.User.Email, "a session's user too")
	assert.True(t, sess.User.EmailVerified)

	assert.ErrorIs(t, s.SetEmail(ctx, bob.ID, "ALICE@example.com", false), store.ErrEmailTaken)
	assert.ErrorIs(t, s.SetEmail(ctx, bob.ID, "alice@example.com\t", true), store.ErrEmailTaken)
	require.NoError(t, s.SetEmail(ctx, alice.ID, "alice@example.com", true), "setting one's own again is no clash")
	for _, bad := range []string{"alice", "@example.com", "alice@", "a@b@c", "al ice@example.com", "a@exa\x00mple.com", "\xff@example.com"} {
		var input *store.InputError
		assert.ErrorAs(t, s.SetEmail(ctx, bob.ID, bad, true), &input, "%q", bad)
	}
	assert.ErrorIs(t, s.SetEmail(ctx, "00000000-0000-0000-0000-000000000000", "x@example.com", true), store.ErrUserNotFound)
	assert.ErrorIs(t, s.SetEmail(ctx, "not-an-id", "x@example.com", true), store.ErrUserNotFound)

	require.NoError(t, s.SetEmail(ctx, bob.ID, "bob@example.com", false))
	got = must(s.GetUser(ctx, bob.ID))
	assert.Equal(t, "bob@example.com", got.Email)
	assert.False(t, got.EmailVerified, "set unverified")

	require.NoError(t, s.SetEmail(ctx, alice.ID, "", true), "cleared")
	got = must(s.GetUser(ctx, alice.ID))
	assert.Empty(t, got.Email)
	assert.False(t, got.EmailVerified, "no address is no verified address")
	require.NoError(t, s.SetEmail(ctx, bob.ID, "alice@example.com", true), "free again")
}

// A sign-in or forgot-password form finds a user by name, or by an address
// only once it is verified.
func TestUserByLoginOnlyByVerifiedAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	require.NoError(t, s.SetEmail(ctx, alice.ID, "alice@example.com", true))
	require.NoError(t, s.SetEmail(ctx, bob.ID, "bob@example.com", false))

	assert.Equal(t, alice.ID, must(s.UserByLogin(ctx, "ALICE")).ID, "by name as names match")
	assert.Equal(t, alice.ID, must(s.UserByLogin(ctx, " Alice@Example.com")).ID, "by verified address")
	assert.Equal(t, bob.ID, must(s.UserByLogin(ctx, "bob")).ID)
	for _, nobody := range []string{"bob@example.com", "carol", "carol@example.com", "", "@", "\xff@x"} {
		_, err := s.UserByLogin(ctx, nobody)
		assert.ErrorIs(t, err, store.ErrUserNotFound, "%q", nobody)
	}
}

// A registration that must verify its address creates the user with it,
// unverified, or not at all when another user has it.
func TestCreateUserWithEmail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	u, err := s.CreateUserWithEmail(ctx, "alice", "correct horse battery", " Alice@Example.com")
	require.NoError(t, err)
	assert.Equal(t, "alice@example.com", u.Email)
	assert.False(t, u.EmailVerified)
	assert.Equal(t, u.ID, must(s.UserByEmail(ctx, "ALICE@example.com")).ID, "found unverified for telling it is taken")
	_, err = s.UserByLogin(ctx, "alice@example.com")
	assert.ErrorIs(t, err, store.ErrUserNotFound, "but signs nobody in")

	_, err = s.CreateUserWithEmail(ctx, "bob", "correct horse battery", "alice@EXAMPLE.com")
	assert.ErrorIs(t, err, store.ErrEmailTaken)
	_, err = s.GetUserByName(ctx, "bob")
	assert.ErrorIs(t, err, store.ErrUserNotFound, "no user left behind")
	_, err = s.CreateUserWithEmail(ctx, "alice", "correct horse battery", "other@example.com")
	assert.ErrorIs(t, err, store.ErrUserExists)
	var input *store.InputError
	for _, bad := range [][2]string{{"carol", "no address"}, {"carol", ""}, {"", "carol@example.com"}} {
		_, err = s.CreateUserWithEmail(ctx, bad[0], "correct horse battery", bad[1])
		assert.ErrorAs(t, err, &input, "%q", bad)
	}
	_, err = s.CreateUserWithEmail(ctx, "carol", "short", "carol@example.com")
	assert.ErrorAs(t, err, &input)
	_, err = s.UserByEmail(ctx, "nobody@example.com")
	assert.ErrorIs(t, err, store.ErrUserNotFound)
}
