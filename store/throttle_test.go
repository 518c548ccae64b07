package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

func TestLoginFailuresAreCountedPerAccountAndPerIP(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	th := store.Throttle{PerAccount: 3, PerIP: 5, Window: 15 * time.Minute}

	for range 3 {
		f, err := s.CheckLoginFailures(ctx, "Alice", "192.0.2.1", th)
		require.NoError(t, err)
		assert.False(t, f.Throttled())
		require.NoError(t, s.RecordLoginFailure(ctx, "Alice", "192.0.2.1", th))
	}
	f, err := s.CheckLoginFailures(ctx, "alice", "198.51.100.9", th)
	require.NoError(t, err)
	assert.True(t, f.Throttled(), "the account's limit holds from any address, whatever the case of the name")
	assert.Equal(t, 3, f.Account)
	assert.InDelta(t, (15 * time.Minute).Seconds(), f.RetryAfter.Seconds(), 5)

	f, err = s.CheckLoginFailures(ctx, "bob", "192.0.2.1", th)
	require.NoError(t, err)
	assert.False(t, f.Throttled(), "another account from the same address is still under the IP limit")
	for _, name := range []string{"bob", "carol"} {
		require.NoError(t, s.RecordLoginFailure(ctx, name, "192.0.2.1", th))
	}
	f, err = s.CheckLoginFailures(ctx, "dave", "192.0.2.1", th)
	require.NoError(t, err)
	assert.True(t, f.Throttled(), "five failures from one address across accounts reach the IP limit")
	assert.Equal(t, 5, f.IP)

	// Failures older than the window no longer count, and the cleanup removes them.
	exec(t, s, `UPDATE pgsession.login_attempts SET attempted_at = now() - interval '16 minutes', expires_at = now() - interval '1 minute'`)
	f, err = s.CheckLoginFailures(ctx, "alice", "192.0.2.1", th)
	require.NoError(t, err)
	assert.False(t, f.Throttled(), "throttling ends by itself")
	n, err := s.CleanupLoginAttempts(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(5), n)

	require.NoError(t, s.RecordLoginFailure(ctx, "alice", "192.0.2.1", th))
	require.NoError(t, s.ClearLoginFailures(ctx, "ALICE"))
	f, err = s.CheckLoginFailures(ctx, "alice", "203.0.113.1", th)
	require.NoError(t, err)
	assert.Zero(t, f.Account, "a successful login clears the account's count")
}

func TestPasswordChecksBeyondTheLimitGetErrBusy(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{MaxConcurrentHashes: 1, HashWait: time.Millisecond})
	newUser(t, s, "alice")
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]int{}
	for range 8 {
		wg.Go(func() {
			_, err := s.VerifyPassword(ctx, "alice", "correct horse battery")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				results["ok"]++
			case errors.Is(err, store.ErrBusy):
				results["busy"]++
			default:
				results[err.Error()]++
			}
		})
	}
	wg.Wait()
	assert.Positive(t, results["ok"])
	assert.Positive(t, results["busy"], "with one slot and no patience, some checks are turned away: %v", results)
	assert.Equal(t, 8, results["ok"]+results["busy"], "%v", results)
}
