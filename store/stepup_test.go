package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// methodOf is the method the gate's lookup reads for token's session.
func methodOf(t *testing.T, s *store.Store, token string) string {
	t.Helper()
	l, found, err := s.CheckSession(context.Background(), store.HashToken(token))
	require.NoError(t, err)
	require.True(t, found)
	sess, err := s.GetSession(context.Background(), token)
	require.NoError(t, err)
	require.Equal(t, l.Method, sess.Method, "both lookups read the same method")
	return l.Method
}

// Each way of signing in records its method: the password alone, each
// second step after a password or a provider, and a passkey alone. A
// provider's sign-in stays a provider's through this site's second step,
// so the upstream is never told a password was typed.
func TestSessionsRecordHowTheyWereSignedIn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	user := twoStepUser(t, s, "alice", []string{"code one", "code two"})
	params := store.SessionParams{User: *user, Lifetime: time.Hour}

	assert.Equal(t, store.MethodPassword, methodOf(t, s, login(t, s, user)), "no method named is a password session")
	passkeyParams := params
	passkeyParams.Method = store.MethodPasskey
	token, _, err := s.CreateSession(ctx, passkeyParams)
	require.NoError(t, err)
	assert.Equal(t, store.MethodPasskey, methodOf(t, s, token))

	for _, tc := range []struct {
		first string
		step  store.SecondStep
		want  string
	}{
		{store.MethodPassword, store.SecondStep{Factor: store.FactorTOTP, TOTPStep: 101}, store.MethodPasswordTOTP},
		{store.MethodPassword, store.SecondStep{Factor: store.FactorRecoveryCode, RecoveryCodeHash: codeHash("code one")},
			store.MethodPasswordRecoveryCode},
		{store.MethodPassword, store.SecondStep{Factor: store.FactorPasskey}, store.MethodPasskey},
		{store.MethodProvider, store.SecondStep{Factor: store.FactorTOTP, TOTPStep: 102}, store.MethodProviderTOTP},
		{store.MethodProvider, store.SecondStep{Factor: store.FactorRecoveryCode, RecoveryCodeHash: codeHash("code two")},
			store.MethodProviderRecoveryCode},
		{store.MethodProvider, store.SecondStep{Factor: store.FactorPasskey}, store.MethodPasskey},
	} {
		pending, err := s.CreatePendingLoginAfter(ctx, *user, tc.first, false)
		require.NoError(t, err)
		// What the caller says is overruled by the step that finished it.
		token, sess, err := s.FinishPendingLogin(ctx, pending, tc.step, params)
		require.NoError(t, err, tc.step.Factor)
		assert.Equal(t, tc.want, sess.Method, tc.step.Factor)
		assert.Equal(t, tc.want, methodOf(t, s, token), tc.step.Factor)
	}
}

// A step-up keeps the session and its token, uses the factor up as a
// sign-in would (a TOTP step once, whether at a sign-in or a step-up; a
// recovery code once), and refuses another user's session or an ended one
// without using anything.
func TestStepUpSessionUsesTheFactorOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := twoStepUser(t, s, "alice", []string{"code one"})
	bob := newUser(t, s, "bob")
	token := login(t, s, alice)
	id := store.HashToken(token)

	_, err := s.StepUpSession(ctx, id, alice.ID, store.SecondStep{Factor: store.FactorTOTP, TOTPStep: 100})
	assert.ErrorIs(t, err, store.ErrFactorRefused, "the step that confirmed the authenticator is used")
	assert.Equal(t, store.MethodPassword, methodOf(t, s, token), "a refused factor changes nothing")

	_, err = s.StepUpSession(ctx, id, bob.ID, store.SecondStep{Factor: store.FactorTOTP, TOTPStep: 101})
	assert.ErrorIs(t, err, store.ErrSessionNotFound, "not bob's session")
	_, err = s.StepUpSession(ctx, store.HashToken("unknown token"), alice.ID, store.SecondStep{Factor: store.FactorTOTP, TOTPStep: 101})
	assert.ErrorIs(t, err, store.ErrSessionNotFound)
	assert.Equal(t, int64(100), stepOf(t, s), "a step-up of no session uses up no step")

	method, err := s.StepUpSession(ctx, id, alice.ID, store.SecondStep{Factor: store.FactorTOTP, TOTPStep: 101})
	require.NoError(t, err)
	assert.Equal(t, store.MethodPasswordTOTP, method)
	assert.Equal(t, store.MethodPasswordTOTP, methodOf(t, s, token), "the same token, stepped up")
	assert.Equal(t, int64(101), stepOf(t, s))

	// The code of the step-up is spent: neither another step-up nor a
	// sign-in takes it again.
	other := login(t, s, alice)
	_, err = s.StepUpSession(ctx, store.HashToken(other), alice.ID, store.SecondStep{Factor: store.FactorTOTP, TOTPStep: 101})
	assert.ErrorIs(t, err, store.ErrFactorRefused)
	pending, err := s.CreatePendingLogin(ctx, *alice, false)
	require.NoError(t, err)
	_, _, err = s.FinishPendingLogin(ctx, pending, store.SecondStep{Factor: store.FactorTOTP, TOTPStep: 101},
		store.SessionParams{User: *alice, Lifetime: time.Hour})
	assert.ErrorIs(t, err, store.ErrFactorRefused, "a code used to step up does not sign in")

	recovery := store.SecondStep{Factor: store.FactorRecoveryCode, RecoveryCodeHash: codeHash("code one")}
	method, err = s.StepUpSession(ctx, store.HashToken(other), alice.ID, recovery)
	require.NoError(t, err)
	assert.Equal(t, store.MethodPasswordRecoveryCode, method)
	third := login(t, s, alice)
	_, err = s.StepUpSession(ctx, store.HashToken(third), alice.ID, recovery)
	assert.ErrorIs(t, err, store.ErrFactorRefused, "a recovery code works once")

	require.NoError(t, s.DeleteSession(ctx, third))
	_, err = s.StepUpSession(ctx, store.HashToken(third), alice.ID, store.SecondStep{Factor: store.FactorPasskey})
	assert.ErrorIs(t, err, store.ErrSessionNotFound, "an ended session steps up no more")
}

// A step-up is announced, so a server that kept the session as a password
// session reads it again; a renewal still says nothing.
func TestStepUpIsAnnounced(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := newStoreAt(t, url, store.Options{})
	alice := newUser(t, s, "alice")
	h := listen(t, s, url)
	h.waitFor(t, "the purge of a new connection", func(inv store.Invalidation) bool { return inv.All })

	token := login(t, s, alice)
	id := store.HashToken(token)
	h.reset()
	_, err := s.StepUpSession(ctx, id, alice.ID, store.SecondStep{Factor: store.FactorPasskey})
	require.NoError(t, err)
	h.waitFor(t, "a step-up", func(inv store.Invalidation) bool { return len(inv.Sessions) == 1 && inv.Sessions[0] == id })

	h.reset()
	exec(t, s, `UPDATE pgsession.sessions SET last_seen_at = now() - interval '1 hour'`)
	touch, err := s.TouchSession(ctx, id, time.Minute)
	require.NoError(t, err)
	require.Equal(t, store.SessionTouched, touch)
	_, err = s.StepUpSession(ctx, id, alice.ID, store.SecondStep{Factor: store.FactorPasskey})
	require.NoError(t, err, "stepping up to the method it has")
	marker := login(t, s, alice)
	require.NoError(t, s.DeleteSession(ctx, marker))
	h.waitFor(t, "the marker", func(inv store.Invalidation) bool {
		return len(inv.Sessions) == 1 && inv.Sessions[0] == store.HashToken(marker)
	})
	assert.Equal(t, []store.Invalidation{{Sessions: []store.SessionID{store.HashToken(marker)}}}, h.all(),
		"a renewal, and a step-up that changes no method, announce nothing")
}

// A provider's session steps up as a provider's, and the methods that
// count as a second factor are the store's to say.
func TestProviderSessionsStepUpAsProviders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	user := twoStepUser(t, s, "alice", nil)
	params := store.SessionParams{User: *user, Lifetime: time.Hour}

	_, err := s.CreatePendingLoginAfter(ctx, *user, store.MethodPasskey, false)
	assert.Error(t, err, "a passkey is a whole sign-in, with nothing pending after it")

	providerParams := params
	providerParams.Method = store.MethodProvider
	token, _, err := s.CreateSession(ctx, providerParams)
	require.NoError(t, err)
	assert.Equal(t, store.MethodProvider, methodOf(t, s, token))
	method, err := s.StepUpSession(ctx, store.HashToken(token), user.ID, store.SecondStep{Factor: store.FactorTOTP, TOTPStep: 102})
	require.NoError(t, err)
	assert.Equal(t, store.MethodProviderTOTP, method)
	assert.Equal(t, store.MethodProviderTOTP, methodOf(t, s, token))

	providerParams.Method = store.MethodProviderMFA
	token, _, err = s.CreateSession(ctx, providerParams)
	require.NoError(t, err)
	assert.Equal(t, store.MethodProviderMFA, methodOf(t, s, token))

	for method, second := range map[string]bool{
		store.MethodPassword: false, store.MethodProvider: false, "": false, "something newer": false,
		store.MethodPasswordTOTP: true, store.MethodPasswordRecoveryCode: true, store.MethodPasskey: true,
		store.MethodProviderMFA: true, store.MethodProviderTOTP: true, store.MethodProviderRecoveryCode: true,
	} {
		assert.Equal(t, second, store.MethodHasSecondFactor(method), method)
	}
}
