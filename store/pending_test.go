package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// twoStepUser makes a user with a confirmed authenticator (last step 100)
// and the given recovery codes, and returns them as read afterwards.
func twoStepUser(t *testing.T, s *store.Store, name string, codes []string) *store.User {
	t.Helper()
	ctx := context.Background()
	u := newUser(t, s, name)
	require.NoError(t, s.SetTOTPSecret(ctx, u.ID, []byte("sealed secret")))
	var hashes [][]byte
	for _, c := range codes {
		hashes = append(hashes, codeHash(c))
	}
	_, err := s.ConfirmTOTP(ctx, u.ID, 100, hashes, "")
	require.NoError(t, err)
	u, err = s.GetUser(ctx, u.ID)
	require.NoError(t, err)
	return u
}

func codeHash(code string) []byte {
	h := sha256.Sum256([]byte(code))
	return h[:]
}

// Every round, one pending login is finished by five right recovery codes,
// a right TOTP step and a verified passkey at once: exactly one starts a
// session, the others get ErrNoPendingLogin, and only the winner's factor
// is used up (none for the passkey, whose ceremony was used before).
func TestFinishPendingLoginOnceUnderParallelFactors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	const rounds = 30
	var codes []string
	for i := range rounds * 5 {
		codes = append(codes, fmt.Sprintf("code-%03d", i))
	}
	user := twoStepUser(t, s, "alice", codes)
	params := store.SessionParams{User: *user, Lifetime: time.Hour}

	totpRounds, passkeyRounds := 0, 0
	wins := map[string]int{}
	for round := range rounds {
		token, err := s.CreatePendingLogin(ctx, *user, false)
		require.NoError(t, err)
		steps := []store.SecondStep{{Factor: store.FactorTOTP, TOTPStep: int64(101 + round)}, {Factor: store.FactorPasskey}}
		for _, c := range codes[round*5 : round*5+5] {
			steps = append(steps, store.SecondStep{Factor: store.FactorRecoveryCode, RecoveryCodeHash: codeHash(c)})
		}
		var mu sync.Mutex
		outcomes := map[string]int{}
		winner := ""
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, step := range steps {
			wg.Go(func() {
				<-start
				_, sess, err := s.FinishPendingLogin(ctx, token, step, params)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && sess != nil:
					outcomes["session"]++
					winner = step.Factor
				case assert.ErrorIs(t, err, store.ErrNoPendingLogin):
					outcomes["gone"]++
				}
			})
		}
		close(start)
		wg.Wait()
		require.Equal(t, map[string]int{"session": 1, "gone": 6}, outcomes, "round %d", round)
		wins[winner]++
		if winner == store.FactorPasskey {
			passkeyRounds++
		}
		if stepOf(t, s) == int64(101+round) {
			totpRounds++
		}
		used := count(t, s, `SELECT count(*) FROM pgsession.recovery_codes WHERE used_at IS NOT NULL`)
		require.Equal(t, round+1-passkeyRounds, used+totpRounds, "round %d: the winner's factor used up, no other", round)
		require.Equal(t, round+1, count(t, s, `SELECT count(*) FROM pgsession.sessions`), "round %d: one session in each", round)
	}
	t.Logf("won by: %v", wins)
}

// stepOf is the last TOTP step accepted of the store's one authenticator.
func stepOf(t *testing.T, s *store.Store) int64 {
	t.Helper()
	return int64(count(t, s, `SELECT last_step FROM pgsession.totp_secrets`))
}

// A wrong factor uses up nothing and keeps the pending login, so its
// failure can be counted and a right factor still finishes it; a used one
// is as wrong. A finished pending login cannot be finished again.
func TestFinishPendingLoginWithAWrongFactorKeepsIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	user := twoStepUser(t, s, "alice", []string{"right code"})
	params := store.SessionParams{User: *user, Lifetime: time.Hour}
	token, err := s.CreatePendingLogin(ctx, *user, true)
	require.NoError(t, err)

	for _, step := range []store.SecondStep{
		{Factor: store.FactorRecoveryCode, RecoveryCodeHash: codeHash("wrong code")},
		{Factor: store.FactorTOTP, TOTPStep: 100}, // the step used to confirm it
	} {
		_, _, err = s.FinishPendingLogin(ctx, token, step, params)
		assert.ErrorIs(t, err, store.ErrFactorRefused, "%+v", step)
	}
	pending, err := s.GetPendingLogin(ctx, token)
	require.NoError(t, err)
	require.NotNil(t, pending, "a wrong factor keeps the pending login")
	assert.True(t, pending.Remember)

	_, sess, err := s.FinishPendingLogin(ctx, token, store.SecondStep{Factor: store.FactorRecoveryCode, RecoveryCodeHash: codeHash("right code")}, params)
	require.NoError(t, err)
	assert.Equal(t, user.ID, sess.User.ID)
	_, _, err = s.FinishPendingLogin(ctx, token, store.SecondStep{Factor: store.FactorTOTP, TOTPStep: 200}, params)
	assert.ErrorIs(t, err, store.ErrNoPendingLogin, "a pending login is finished once")
	assert.Equal(t, int64(100), stepOf(t, s), "and the refused step was not used up")
	_, _, err = s.FinishPendingLogin(ctx, "not a token", store.SecondStep{Factor: store.FactorPasskey}, params)
	assert.ErrorIs(t, err, store.ErrNoPendingLogin)
}
