package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// resetLink gives alice a verified address and a reset link to it.
func resetLink(t *testing.T, s *store.Store, u *store.User) string {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, s.SetEmail(ctx, u.ID, u.Username+"@example.com", true))
	return must(s.NewAccountToken(ctx, store.PurposeReset, u.ID, u.Username+"@example.com", 30*time.Minute))
}

// A reset link sets the password once: the old password stops working,
// every session ends, the credential version rises, and the link is gone.
func TestResetPasswordWorksOnceAndEndsSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	sessions := []string{login(t, s, alice), login(t, s, alice)}
	token := resetLink(t, s, alice)

	u, err := s.ResetPassword(ctx, token, "a brand new password")
	require.NoError(t, err)
	assert.Equal(t, alice.ID, u.ID)
	assert.Greater(t, u.CredentialVersion, alice.CredentialVersion)
	for _, sess := range sessions {
		got, err := s.GetSession(ctx, sess)
		require.NoError(t, err)
		assert.Nil(t, got, "every session of the user ended")
	}
	_, err = s.VerifyPassword(ctx, "alice", "correct horse battery")
	assert.ErrorIs(t, err, store.ErrInvalidCredentials)
	must(s.VerifyPassword(ctx, "alice", "a brand new password"))
	// The returned user starts a session under the new credentials.
	_, _, err = s.CreateSession(ctx, store.SessionParams{User: *u, Lifetime: time.Hour})
	require.NoError(t, err)

	_, err = s.ResetPassword(ctx, token, "yet another password")
	assert.ErrorIs(t, err, store.ErrTokenNotFound, "used once")
	assert.Equal(t, 0, count(t, s, `SELECT count(*) FROM pgsession.account_tokens WHERE user_id = $1`, alice.ID))
}

// A password that cannot be set leaves the link working.
func TestResetPasswordRefusesABadPasswordAndKeepsTheLink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	token := resetLink(t, s, alice)
	_, err := s.ResetPassword(ctx, token, "short")
	var input *store.InputError
	require.ErrorAs(t, err, &input)
	must(s.PeekAccountToken(ctx, store.PurposeReset, token))
	must(s.ResetPassword(ctx, token, "long enough now"))
}

// Unknown, malformed, expired and outdated links are refused, each as what
// it is; a verification link is no reset link.
func TestResetPasswordRefusesLinksThatNoLongerWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")

	_, err := s.ResetPassword(ctx, "not a token", "a brand new password")
	assert.ErrorIs(t, err, store.ErrTokenNotFound)
	verify := must(s.NewAccountToken(ctx, store.PurposeVerifyEmail, alice.ID, "alice@example.com", time.Hour))
	_, err = s.ResetPassword(ctx, verify, "a brand new password")
	assert.ErrorIs(t, err, store.ErrTokenNotFound)

	expired := resetLink(t, s, alice)
	expireLinks(t, s, alice.ID)
	_, err = s.ResetPassword(ctx, expired, "a brand new password")
	assert.ErrorIs(t, err, store.ErrTokenExpired)

	older := resetLink(t, s, alice)
	newer := must(s.NewAccountToken(ctx, store.PurposeReset, alice.ID, "alice@example.com", time.Hour))
	_, err = s.ResetPassword(ctx, older, "a brand new password")
	assert.ErrorIs(t, err, store.ErrTokenNotFound, "a newer link ends the older")

	must(s.ChangePassword(ctx, alice.ID, "changed meanwhile", ""))
	_, err = s.ResetPassword(ctx, newer, "a brand new password")
	assert.ErrorIs(t, err, store.ErrTokenExpired, "a password change ends the link")
	must(s.VerifyPassword(ctx, "alice", "changed meanwhile"))
}

// A reset leaves the second factors: the authenticator and its recovery
// codes are still asked for.
func TestResetPasswordKeepsSecondFactors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	require.NoError(t, s.SetTOTPSecret(ctx, alice.ID, []byte("sealed secret")))
	must(s.ConfirmTOTP(ctx, alice.ID, 1, [][]byte{[]byte("code hash")}, ""))
	token := resetLink(t, s, alice)
	must(s.ResetPassword(ctx, token, "a brand new password"))
	factors := must(s.UserFactors(ctx, alice.ID))
	assert.True(t, factors.TOTP)
	assert.Equal(t, 1, factors.RecoveryCodes)
}

// Of two resets racing with one link, one sets its password and the other
// is refused, whichever comes first.
func TestRacingResetsTakeTheLinkOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	token := resetLink(t, s, alice)
	passwords := []string{"first racing password", "second racing password"}
	errs := make([]error, len(passwords))
	var wg sync.WaitGroup
	for i, p := range passwords {
		wg.Go(func() { _, errs[i] = s.ResetPassword(ctx, token, p) })
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		if err == nil {
			assert.Equal(t, -1, won, "both resets won")
			won = i
		} else {
			assert.ErrorIs(t, err, store.ErrTokenNotFound)
		}
	}
	require.NotEqual(t, -1, won, "no reset won")
	must(s.VerifyPassword(ctx, "alice", passwords[won]))
}
