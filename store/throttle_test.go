package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
	reserve := func(name, ip string) store.Attempt {
		t.Helper()
		a, err := s.ReserveLoginAttempt(ctx, name, ip, th)
		require.NoError(t, err)
		return a
	}

	for range 3 {
		assert.False(t, reserve("Alice", "192.0.2.1").Throttled())
	}
	a := reserve("ａｌｉｃｅ", "198.51.100.9")
	assert.True(t, a.Throttled(), "the account's limit holds from any address, whatever the case or width of the name")
	assert.Equal(t, 3, a.Account)
	assert.InDelta(t, (15 * time.Minute).Seconds(), a.RetryAfter.Seconds(), 5)

	assert.False(t, reserve("bob", "192.0.2.1").Throttled(), "another account from the same address is still under the IP limit")
	reserve("carol", "192.0.2.1")
	a = reserve("dave", "192.0.2.1")
	assert.True(t, a.Throttled(), "five attempts from one address across accounts reach the IP limit")
	assert.Equal(t, 5, a.IP)

	// Failures older than the window no longer count, and the cleanup removes them.
	exec(t, s, `UPDATE pgsession.login_attempts SET attempted_at = now() - interval '16 minutes', expires_at = now() - interval '1 minute'`)
	assert.False(t, reserve("alice", "192.0.2.1").Throttled(), "throttling ends by itself")
	n, err := s.CleanupLoginAttempts(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(5), n)

	require.NoError(t, s.ClearLoginFailures(ctx, "ALICE"))
	assert.Zero(t, reserve("alice", "203.0.113.1").Account, "a successful login clears the account's count, its own reservation included")
}

// Forty guesses arrive at once against a limit of five: exactly five may
// have their password checked, however the database interleaves them.
func TestParallelReservationsNeverPassTheLimit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	for _, tc := range []struct {
		name    string
		th      store.Throttle
		account func(i int) string
		ip      func(i int) string
	}{
		{"one account", store.Throttle{PerAccount: 5, PerIP: 1000, Window: time.Minute},
			func(int) string { return "alice" }, func(i int) string { return fmt.Sprintf("192.0.2.%d", i) }},
		{"one address", store.Throttle{PerAccount: 1000, PerIP: 5, Window: time.Minute},
			func(i int) string { return fmt.Sprintf("user%d", i) }, func(int) string { return "198.51.100.7" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec(t, s, `DELETE FROM pgsession.login_attempts`)
			var granted atomic.Int32
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Go(func() {
					a, err := s.ReserveLoginAttempt(ctx, tc.account(i), tc.ip(i), tc.th)
					assert.NoError(t, err)
					if err == nil && !a.Throttled() {
						granted.Add(1)
					}
				})
			}
			wg.Wait()
			assert.Equal(t, int32(5), granted.Load())
		})
	}
}

// Every address of one IPv6 /64 is one client, so rotating through a
// subscriber's addresses does not escape the per-address limit; IPv4 and
// IPv4-mapped addresses are counted one by one.
func TestIPv6ClientsAreCountedByTheirSlash64(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	th := store.Throttle{PerAccount: 100, PerIP: 3, Window: time.Minute}
	for i, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:DB8:1:2:aaaa:bbbb:cccc:dddd"} {
		a, err := s.ReserveLoginAttempt(ctx, fmt.Sprintf("user%d", i), ip, th)
		require.NoError(t, err)
		assert.False(t, a.Throttled())
	}
	a, err := s.ReserveLoginAttempt(ctx, "other", "2001:db8:1:2:1234::1", th)
	require.NoError(t, err)
	assert.True(t, a.Throttled(), "a fourth address of the same /64 is the same client")

	a, err = s.ReserveLoginAttempt(ctx, "other", "2001:db8:1:3::1", th)
	require.NoError(t, err)
	assert.False(t, a.Throttled(), "the next /64 is another client")

	for _, ip := range []string{"192.0.2.1", "::ffff:192.0.2.2", "192.0.2.3"} {
		a, err := s.ReserveLoginAttempt(ctx, "v4", ip, th)
		require.NoError(t, err)
		assert.False(t, a.Throttled(), "%s is its own client", ip)
	}
}

// Registrations count per address toward their own limit and toward the
// address's limit for logins, since each costs a password hash.
func TestRegistrationsAreThrottledPerAddress(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	th := store.Throttle{PerAccount: 10, PerIP: 4, RegistrationsPerIP: 2, Window: time.Minute}
	for range 2 {
		a, err := s.ReserveRegistration(ctx, "192.0.2.1", th)
		require.NoError(t, err)
		assert.False(t, a.Throttled())
	}
	a, err := s.ReserveRegistration(ctx, "192.0.2.1", th)
	require.NoError(t, err)
	assert.True(t, a.Throttled(), "a third registration from one address")
	assert.Positive(t, a.RetryAfter)

	for range 2 {
		a, err := s.ReserveLoginAttempt(ctx, "alice", "192.0.2.1", th)
		require.NoError(t, err)
		assert.False(t, a.Throttled())
	}
	a, err = s.ReserveLoginAttempt(ctx, "bob", "192.0.2.1", th)
	require.NoError(t, err)
	assert.True(t, a.Throttled(), "two registrations and two failed logins fill the address's budget of four")
}

func TestPasswordChecksBeyondTheLimitGetErrBusy(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{MaxConcurrentHashes: 1, HashWait: time.Millisecond, Argon2: store.DefaultArgon2})
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
