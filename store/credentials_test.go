package store_test

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/pgsession/caddy-pgsession/store"
)

// A login checks the old password, then the owner's password change
// commits, then the login creates its session: the session must not be
// created, because the password it was made with is no longer the password.
func TestSessionFromACheckBeforeAPasswordChangeIsRefused(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	newUser(t, s, "alice")
	verified, err := s.VerifyPassword(ctx, "alice", "correct horse battery")
	require.NoError(t, err)

	_, err = s.ChangePassword(ctx, verified.ID, "a brand new password", "")
	require.NoError(t, err)

	_, _, err = s.CreateSession(ctx, store.SessionParams{User: *verified, Lifetime: time.Hour})
	assert.ErrorIs(t, err, store.ErrCredentialsChanged)
	assert.Zero(t, count(t, s, `SELECT count(*) FROM pgsession.sessions`))
}

// The same race the other way round: the session is inserted while the
// password change is still uncommitted, so the insert sees the old
// credentials. The session must still be dead once the change commits.
func TestSessionInsertedDuringAPasswordChangeDiesWithTheOldPassword(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")

	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `UPDATE pgsession.users SET password_hash = password_hash,
		credential_version = credential_version + 1 WHERE id = $1`, alice.ID)
	require.NoError(t, err)

	token, _, err := s.CreateSession(ctx, store.SessionParams{User: *alice, Lifetime: time.Hour})
	require.NoError(t, err, "the uncommitted change is not visible to the insert")
	sess, err := s.GetSession(ctx, token)
	require.NoError(t, err)
	require.NotNil(t, sess, "live before the change commits")

	require.NoError(t, tx.Commit(ctx))
	sess, err = s.GetSession(ctx, token)
	require.NoError(t, err)
	assert.Nil(t, sess, "made under the old credentials, dead under the new")
}

// The session a user changes their password from stays theirs.
func TestPasswordChangeKeepsTheSessionItWasMadeFrom(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	current, other := login(t, s, alice), login(t, s, alice)

	n, err := s.ChangePassword(ctx, alice.ID, "a brand new password", current)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	sess, err := s.GetSession(ctx, current)
	require.NoError(t, err)
	assert.NotNil(t, sess, "the session the change was made from")
	sess, err = s.GetSession(ctx, other)
	require.NoError(t, err)
	assert.Nil(t, sess)

	relogin, err := s.VerifyPassword(ctx, "alice", "a brand new password")
	require.NoError(t, err)
	_, _, err = s.CreateSession(ctx, store.SessionParams{User: *relogin, Lifetime: time.Hour})
	assert.NoError(t, err, "a login with the new password works")
}

// A login in flight for a user who is deleted meanwhile gets no session.
func TestSessionForADeletedUserIsRefused(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	newUser(t, s, "alice")
	verified, err := s.VerifyPassword(ctx, "alice", "correct horse battery")
	require.NoError(t, err)
	require.NoError(t, s.DeleteUser(ctx, "alice"))
	_, _, err = s.CreateSession(ctx, store.SessionParams{User: *verified, Lifetime: time.Hour})
	assert.ErrorIs(t, err, store.ErrUserNotFound)
}

// Admin rights are read with the session, so removing them holds at once.
func TestRemovingAdminRightsHoldsForLiveSessions(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	root, err := s.CreateUser(ctx, "root", "correct horse battery", true)
	require.NoError(t, err)
	token := login(t, s, root)
	require.NoError(t, s.SetAdmin(ctx, root.ID, false))
	sess, err := s.GetSession(ctx, token)
	require.NoError(t, err)
	require.NotNil(t, sess)
	assert.False(t, sess.User.IsAdmin)
	assert.ErrorIs(t, s.SetAdmin(ctx, "00000000-0000-0000-0000-000000000000", true), store.ErrUserNotFound)
}

func TestLookAlikeUsernamesAreOneAccount(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	bob := newUser(t, s, "bob")

	for _, name := range []string{"ＢＯＢ", "BOB", "Bob"} {
		_, err := s.CreateUser(ctx, name, "correct horse battery", false)
		assert.ErrorIs(t, err, store.ErrUserExists, "%q", name)
		found, err := s.GetUserByName(ctx, name)
		require.NoError(t, err, "%q", name)
		assert.Equal(t, bob.ID, found.ID, "%q finds bob", name)
		verified, err := s.VerifyPassword(ctx, name, "correct horse battery")
		require.NoError(t, err, "%q logs in as bob", name)
		assert.Equal(t, bob.ID, verified.ID)
	}

	ada, err := s.CreateUser(ctx, "ＡＤＡ Lovelace", "correct horse battery", false)
	require.NoError(t, err)
	assert.Equal(t, "ADA Lovelace", ada.Username, "the fullwidth letters are stored as what they look like")
}

func TestUsernamesOutsideTheProfileAreRefused(t *testing.T) {
	for _, tc := range []struct{ name, msg string }{
		{"bob\u200b", "username contains an invisible character (U+200B)"},
		{"\u200dbob", "username contains an invisible character (U+200D)"},
		{"bo\u0007b", "username contains a control character"},
		{"bob\u00a0smith", "username contains a space other than U+0020 (U+00A0)"},
		{"bob  smith", "username has two spaces in a row"},
		{" bob", "username starts or ends with a space"},
		{"bob😀", `username contains '😀' (U+1F600), which usernames may not contain`},
		{"", "username is empty"},
	} {
		_, err := store.PrepareUsername(tc.name)
		var inputErr *store.InputError
		if assert.ErrorAs(t, err, &inputErr, "%q", tc.name) {
			assert.Equal(t, tc.msg, inputErr.Msg, "%q", tc.name)
		}
	}
	for _, ok := range []string{"bob", "Ada Lovelace", "josé", "o'brien", "alice@example.com", "李小龙", "bob-smith_1.2"} {
		_, err := store.PrepareUsername(ok)
		assert.NoError(t, err, "%q", ok)
	}
}

// Rows from before the username profile keep working: a name that fits gets
// its key, one that does not (or looks like an older account) keeps logging
// in by its exact name, unless an account it looks like exists.
func TestUsernamesFromBeforeTheProfile(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	bob := newUser(t, s, "bob")
	hash, err := store.HashPassword("correct horse battery")
	require.NoError(t, err)
	for _, name := range []string{"Dave", "carol\u200b", "ＢＯＢ", "Ｅｖｅ"} {
		exec(t, s, `INSERT INTO pgsession.users (username, password_hash) VALUES ($1, $2)`, name, hash)
	}
	_, err = s.Migrate(ctx)
	require.NoError(t, err)

	legacy, err := s.LegacyUsernames(ctx)
	require.NoError(t, err)
	sort.Strings(legacy)
	assert.Equal(t, []string{"carol\u200b", "ＢＯＢ"}, legacy)

	for name, wantName := range map[string]string{"dave": "Dave", "EVE": "Ｅｖｅ", "CAROL\u200b": "carol\u200b", "ＢＯＢ": "bob"} {
		u, err := s.VerifyPassword(ctx, name, "correct horse battery")
		if assert.NoError(t, err, "%q", name) {
			assert.Equal(t, wantName, u.Username, "%q", name)
		}
	}
	u, err := s.GetUserByName(ctx, "ｂｏｂ")
	require.NoError(t, err)
	assert.Equal(t, bob.ID, u.ID, "the keyed account wins over the look-alike")
	assert.False(t, slices.Contains(legacy, "Dave"))
}

// medianFailedChecks is the median time of nine wrong passwords for each
// of names, taken in turns, so that a busy moment of the machine slows
// each name alike.
func medianFailedChecks(t *testing.T, s *store.Store, names ...string) []time.Duration {
	t.Helper()
	times := make([][]time.Duration, len(names))
	for range 9 {
		for i, name := range names {
			start := time.Now()
			_, err := s.VerifyPassword(context.Background(), name, "wrong password")
			require.ErrorIs(t, err, store.ErrInvalidCredentials)
			times[i] = append(times[i], time.Since(start))
		}
	}
	medians := make([]time.Duration, len(names))
	for i := range times {
		slices.Sort(times[i])
		medians[i] = times[i][len(times[i])/2]
	}
	return medians
}

// A wrong password for a user imported with a cheap bcrypt hash takes as
// long as one for a user who does not exist (a fake argon2id check), so
// timing does not reveal which names are imported accounts.
func TestWrongPasswordForABcryptUserTakesAsLongAsAnUnknownUser(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{Argon2: store.DefaultArgon2})
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse battery"), bcrypt.MinCost)
	require.NoError(t, err)
	_, err = s.CreateUserWithHash(ctx, "imported", string(hash), false)
	require.NoError(t, err)

	medians := medianFailedChecks(t, s, "nobody", "imported")
	unknown, imported := medians[0], medians[1]
	t.Logf("median failed check: unknown user %v, bcrypt user %v", unknown, imported)
	// Unpadded, bcrypt at its minimum cost answers some thirty times sooner.
	assert.Greater(t, imported, unknown/2, "a bcrypt user's wrong password answers sooner than an unknown user's")
}
