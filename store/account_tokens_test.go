package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// expireLinks moves every link of the user into the past.
func expireLinks(t *testing.T, s *store.Store, userID store.UserID) {
	t.Helper()
	exec(t, s, `UPDATE pgsession.account_tokens SET created_at = now() - interval '2 hours',
		expires_at = now() - interval '1 hour' WHERE user_id = $1`, userID)
}

// A verification link is read without being used as often as the
// confirmation page asks, sets the address once, and is then gone; the
// database holds only its hash.
func TestVerifyEmailLinkWorksOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	token, err := s.NewAccountToken(ctx, store.PurposeVerifyEmail, alice.ID, "Alice@Example.com", time.Hour)
	require.NoError(t, err)
	assert.True(t, store.ValidToken(token))
	assert.Equal(t, 0, count(t, s, `SELECT count(*) FROM pgsession.account_tokens WHERE id = $1`, token), "only the hash is stored")
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM pgsession.account_tokens WHERE id = $1`, string(store.HashToken(token))))

	for range 2 {
		peek, err := s.PeekAccountToken(ctx, store.PurposeVerifyEmail, token)
		require.NoError(t, err)
		assert.Equal(t, store.AccountToken{Purpose: store.PurposeVerifyEmail, UserID: alice.ID, Email: "alice@example.com",
			CredentialVersion: alice.CredentialVersion, CreatedAt: peek.CreatedAt, ExpiresAt: peek.ExpiresAt}, *peek)
		assert.WithinDuration(t, peek.CreatedAt.Add(time.Hour), peek.ExpiresAt, time.Second)
	}
	assert.Empty(t, must(s.GetUser(ctx, alice.ID)).Email, "reading the link changes nothing")
	_, err = s.PeekAccountToken(ctx, store.PurposeReset, token)
	assert.ErrorIs(t, err, store.ErrTokenNotFound, "a link is of one purpose")

	u, err := s.VerifyEmail(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, "alice@example.com", u.Email)
	assert.True(t, u.EmailVerified)
	_, err = s.VerifyEmail(ctx, token)
	assert.ErrorIs(t, err, store.ErrTokenNotFound, "used once")
	_, err = s.PeekAccountToken(ctx, store.PurposeVerifyEmail, token)
	assert.ErrorIs(t, err, store.ErrTokenNotFound)
}

// A malformed token is not found without a query: a store whose pool is
// closed says so without an error of the database.
func TestMalformedLinksAreNotFoundWithoutAQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	closed := newPool(t, pgtest.NewDatabase(t))
	closed.Close()
	offline, err := store.New(closed, store.Options{})
	require.NoError(t, err)
	for _, bad := range []string{"", "short", strings.Repeat("A", store.TokenLength-1) + "!", strings.Repeat("A", 1<<16)} {
		_, err := offline.PeekAccountToken(ctx, store.PurposeVerifyEmail, bad)
		assert.ErrorIs(t, err, store.ErrTokenNotFound)
		_, err = offline.VerifyEmail(ctx, bad)
		assert.ErrorIs(t, err, store.ErrTokenNotFound)
	}
	_, err = offline.PeekAccountToken(ctx, "other", strings.Repeat("A", store.TokenLength))
	assert.ErrorIs(t, err, store.ErrTokenNotFound, "an unknown purpose")
}

// An expired link is told from an unknown one until the cleanup job
// deletes it.
func TestExpiredLinkIsExpiredThenCleanedUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	require.NoError(t, s.SetEmail(ctx, alice.ID, "alice@example.com", true))
	token := must(s.NewAccountToken(ctx, store.PurposeVerifyEmail, alice.ID, "alice2@example.com", time.Hour))
	live := must(s.NewAccountToken(ctx, store.PurposeReset, alice.ID, "alice@example.com", time.Hour))
	expireLinks(t, s, alice.ID)
	exec(t, s, `UPDATE pgsession.account_tokens SET expires_at = now() + interval '1 hour' WHERE id = $1`,
		string(store.HashToken(live)))

	_, err := s.PeekAccountToken(ctx, store.PurposeVerifyEmail, token)
	assert.ErrorIs(t, err, store.ErrTokenExpired)
	_, err = s.VerifyEmail(ctx, token)
	assert.ErrorIs(t, err, store.ErrTokenExpired)
	assert.Equal(t, "alice@example.com", must(s.GetUser(ctx, alice.ID)).Email)

	assert.Equal(t, int64(1), must(s.CleanupAccountTokens(ctx)))
	_, err = s.VerifyEmail(ctx, token)
	assert.ErrorIs(t, err, store.ErrTokenNotFound, "gone")
	c, ran, err := s.RunCleanup(ctx, "test", time.Nanosecond)
	require.NoError(t, err)
	assert.True(t, ran)
	assert.Zero(t, c.AccountTokens, "the live reset link stays")
	must(s.PeekAccountToken(ctx, store.PurposeReset, live))
}

// A newer link of a purpose ends the older ones, and leaves the other
// purpose's; issuing many at once leaves one.
func TestNewerLinkEndsOlder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	older := must(s.NewAccountToken(ctx, store.PurposeVerifyEmail, alice.ID, "old@example.com", time.Hour))
	reset := must(s.NewAccountToken(ctx, store.PurposeReset, alice.ID, "old@example.com", time.Hour))
	bobs := must(s.NewAccountToken(ctx, store.PurposeVerifyEmail, bob.ID, "bob@example.com", time.Hour))
	newer := must(s.NewAccountToken(ctx, store.PurposeVerifyEmail, alice.ID, "new@example.com", time.Hour))

	_, err := s.VerifyEmail(ctx, older)
	assert.ErrorIs(t, err, store.ErrTokenNotFound)
	must(s.PeekAccountToken(ctx, store.PurposeVerifyEmail, bobs))
	assert.Equal(t, "new@example.com", must(s.VerifyEmail(ctx, newer)).Email)
	_, err = s.PeekAccountToken(ctx, store.PurposeReset, reset)
	assert.ErrorIs(t, err, store.ErrTokenExpired, "a reset link sent to an address no longer the user's")

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := s.NewAccountToken(ctx, store.PurposeReset, bob.ID, "bob@example.com", time.Hour)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM pgsession.account_tokens WHERE user_id = $1 AND purpose = 'reset'`, bob.ID))

	_, err = s.NewAccountToken(ctx, store.PurposeVerifyEmail, "00000000-0000-0000-0000-000000000000", "x@example.com", time.Hour)
	assert.ErrorIs(t, err, store.ErrUserNotFound)
	var input *store.InputError
	_, err = s.NewAccountToken(ctx, store.PurposeVerifyEmail, alice.ID, "not an address", time.Hour)
	assert.ErrorAs(t, err, &input)
	_, err = s.NewAccountToken(ctx, "other", alice.ID, "a@example.com", time.Hour)
	assert.Error(t, err)
}

// Any password change ends a reset link sent before it.
func TestPasswordChangeEndsResetLink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	require.NoError(t, s.SetEmail(ctx, alice.ID, "alice@example.com", true))
	token := must(s.NewAccountToken(ctx, store.PurposeReset, alice.ID, "alice@example.com", time.Hour))
	must(s.PeekAccountToken(ctx, store.PurposeReset, token))
	must(s.ChangePassword(ctx, alice.ID, "another fine password", ""))
	_, err := s.PeekAccountToken(ctx, store.PurposeReset, token)
	assert.ErrorIs(t, err, store.ErrTokenExpired)
}

// Of many uses of one link at once, one sets the address.
func TestRacingVerificationsTakeTheLinkOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	token := must(s.NewAccountToken(ctx, store.PurposeVerifyEmail, alice.ID, "alice@example.com", time.Hour))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.VerifyEmail(ctx, token) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			assert.ErrorIs(t, err, store.ErrTokenNotFound)
		}
	}
	assert.Equal(t, 1, won)
}

// An address another user took after the link was sent is not taken from
// them; the link stays and says so again.
func TestVerifyEmailRefusesATakenAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	token := must(s.NewAccountToken(ctx, store.PurposeVerifyEmail, alice.ID, "shared@example.com", time.Hour))
	require.NoError(t, s.SetEmail(ctx, bob.ID, "shared@example.com", true))
	for range 2 {
		_, err := s.VerifyEmail(ctx, token)
		assert.ErrorIs(t, err, store.ErrEmailTaken)
	}
	assert.Empty(t, must(s.GetUser(ctx, alice.ID)).Email)
}

// The links sent are counted per user and purpose, past their use.
func TestReserveAccountLinkCountsPerUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	limits := []store.LinkLimit{{Max: 3, Window: time.Hour}, {Max: 1, Window: 0}}
	for range 3 {
		assert.Zero(t, must(s.ReserveAccountLink(ctx, store.PurposeVerifyEmail, alice.ID, limits...)))
	}
	wait := must(s.ReserveAccountLink(ctx, store.PurposeVerifyEmail, alice.ID, limits...))
	assert.InDelta(t, time.Hour.Seconds(), wait.Seconds(), 60, "until the oldest leaves the hour")
	assert.Zero(t, must(s.ReserveAccountLink(ctx, store.PurposeReset, alice.ID, limits...)), "another purpose")
	assert.Zero(t, must(s.ReserveAccountLink(ctx, store.PurposeVerifyEmail, bob.ID, limits...)), "another user")

	short := store.LinkLimit{Max: 1, Window: 5 * time.Minute}
	assert.Zero(t, must(s.ReserveAccountLink(ctx, store.PurposeReset, bob.ID, short)))
	assert.Positive(t, must(s.ReserveAccountLink(ctx, store.PurposeReset, bob.ID, short)))
	exec(t, s, `UPDATE pgsession.account_links_sent SET sent_at = now() - interval '6 minutes', expires_at = now() - interval '1 minute'`)
	assert.Zero(t, must(s.ReserveAccountLink(ctx, store.PurposeReset, bob.ID, short)), "the window passed")
	must(s.CleanupAccountTokens(ctx))
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM pgsession.account_links_sent`), "the old counts deleted")
	_, err := s.ReserveAccountLink(ctx, store.PurposeReset, "00000000-0000-0000-0000-000000000000", short)
	assert.ErrorIs(t, err, store.ErrUserNotFound)
}
