package store_test

import (
	"bytes"
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

func newPasskey(userID store.UserID, id, name string) store.Passkey {
	return store.Passkey{
		ID: []byte(id), UserID: userID, Name: name,
		Credential: []byte(`{"id":"` + id + `"}`), PublicKey: []byte("public key of " + id),
		SignCount: 1, AAGUID: make([]byte, 16), Transports: []string{"internal", "hybrid"}, BackupEligible: true,
	}
}

func TestPasskeysAddListDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")

	added, err := s.AddPasskey(ctx, newPasskey(alice.ID, "key-1", "Laptop"))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), added.CreatedAt, time.Minute)
	_, err = s.AddPasskey(ctx, newPasskey(alice.ID, "key-2", "Phone"))
	require.NoError(t, err)

	_, err = s.AddPasskey(ctx, newPasskey(bob.ID, "key-1", "Bob's"))
	assert.ErrorIs(t, err, store.ErrPasskeyExists, "a credential id is registered once")

	keys, err := s.UserPasskeys(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	assert.Equal(t, "Laptop", keys[0].Name, "oldest first")
	assert.Equal(t, []string{"internal", "hybrid"}, keys[0].Transports)
	assert.JSONEq(t, `{"id":"key-1"}`, string(keys[0].Credential))
	assert.True(t, keys[0].BackupEligible)
	assert.Nil(t, keys[0].LastUsedAt, "never used yet")

	gone, err := s.DeletePasskey(ctx, bob.ID, []byte("key-1"))
	require.NoError(t, err)
	assert.False(t, gone, "bob cannot remove alice's passkey")
	gone, err = s.DeletePasskey(ctx, alice.ID, []byte("key-1"))
	require.NoError(t, err)
	assert.True(t, gone)
	keys, err = s.UserPasskeys(ctx, alice.ID)
	require.NoError(t, err)
	assert.Len(t, keys, 1)

	require.NoError(t, s.DeleteUser(ctx, "alice"))
	assert.Equal(t, 0, count(t, s, `SELECT count(*) FROM pgsession.passkeys`), "a user's passkeys go with the user")
}

func TestPasskeyNamesAreChecked(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	for _, name := range []string{"", "   ", "line\nbreak", strings.Repeat("x", store.MaxPasskeyNameLength+1), "\xff"} {
		_, err := s.AddPasskey(ctx, newPasskey(alice.ID, "key-"+name, name))
		var inputErr *store.InputError
		assert.ErrorAs(t, err, &inputErr, "%q", name)
	}
	_, err := s.AddPasskey(ctx, newPasskey(alice.ID, "key", strings.Repeat("é", store.MaxPasskeyNameLength)))
	assert.NoError(t, err, "the longest name fits")
	_, err = s.AddPasskey(ctx, newPasskey("00000000-0000-4000-8000-000000000000", "orphan", "Nobody's"))
	assert.ErrorIs(t, err, store.ErrUserNotFound)
}

func TestPasskeysPerUserAreLimited(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	for i := range store.MaxPasskeysPerUser {
		_, err := s.AddPasskey(ctx, newPasskey(alice.ID, "key-"+strings.Repeat("k", i+1), "Key"))
		require.NoError(t, err)
	}
	_, err := s.AddPasskey(ctx, newPasskey(alice.ID, "one-too-many", "Key"))
	assert.ErrorIs(t, err, store.ErrTooManyPasskeys)
}

// The counter only moves forward, and of two sign-ins reporting the same
// value only one passes: the other is a clone or a replay.
func TestPasskeySignCountMovesForwardOnly(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	_, err := s.AddPasskey(ctx, newPasskey(alice.ID, "key", "Laptop")) // count 1
	require.NoError(t, err)

	require.NoError(t, s.UsePasskey(ctx, []byte("key"), 5, true))
	assert.ErrorIs(t, s.UsePasskey(ctx, []byte("key"), 5, true), store.ErrPasskeyCounter, "the same value again")
	assert.ErrorIs(t, s.UsePasskey(ctx, []byte("key"), 3, true), store.ErrPasskeyCounter, "a value going backwards")
	assert.ErrorIs(t, s.UsePasskey(ctx, []byte("key"), 0, true), store.ErrPasskeyCounter, "0 after a counter was seen")
	keys, err := s.UserPasskeys(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, uint32(5), keys[0].SignCount)
	assert.True(t, keys[0].BackupState)
	require.NotNil(t, keys[0].LastUsedAt)

	var wg sync.WaitGroup
	results := make(chan error, 8)
	for range 8 {
		wg.Go(func() { results <- s.UsePasskey(ctx, []byte("key"), 6, true) })
	}
	wg.Wait()
	close(results)
	passed := 0
	for err := range results {
		if err == nil {
			passed++
		} else {
			assert.ErrorIs(t, err, store.ErrPasskeyCounter)
		}
	}
	assert.Equal(t, 1, passed, "one of the racing sign-ins with counter 6 passes")

	counterless := newPasskey(alice.ID, "no-counter", "Phone")
	counterless.SignCount = 0
	_, err = s.AddPasskey(ctx, counterless)
	require.NoError(t, err)
	for range 3 {
		assert.NoError(t, s.UsePasskey(ctx, []byte("no-counter"), 0, false), "an authenticator without a counter reports 0 each time")
	}
}

func TestWebAuthnHandlesAreRandomAndFindTheirUser(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	ha, err := s.WebAuthnHandle(ctx, alice.ID)
	require.NoError(t, err)
	hb, err := s.WebAuthnHandle(ctx, bob.ID)
	require.NoError(t, err)
	assert.Len(t, ha, 16)
	assert.NotEqual(t, ha, hb)
	assert.NotContains(t, string(ha), "alice")

	u, err := s.UserByWebAuthnHandle(ctx, ha)
	require.NoError(t, err)
	assert.Equal(t, alice.ID, u.ID)
	for _, handle := range [][]byte{nil, []byte("nobody's handle"), make([]byte, 65)} {
		_, err = s.UserByWebAuthnHandle(ctx, handle)
		assert.ErrorIs(t, err, store.ErrUserNotFound)
	}
	_, err = s.WebAuthnHandle(ctx, "not-a-uuid")
	assert.ErrorIs(t, err, store.ErrUserNotFound)
}

// A ceremony's challenge is finished once, on any server: the second
// finish inserts a duplicate and is refused, and only the hash is kept.
// The cleanup round forgets a challenge an hour after its cookie expired.
func TestUsedChallengesAreRecordedOnce(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s, other := newStoreAt(t, url, store.Options{}), newStoreAt(t, url, store.Options{})

	expires := time.Now().Add(5 * time.Minute)
	require.NoError(t, s.UseChallenge(ctx, "challenge-one", expires))
	assert.ErrorIs(t, s.UseChallenge(ctx, "challenge-one", expires), store.ErrNoCeremony, "a ceremony is finished once")
	assert.ErrorIs(t, other.UseChallenge(ctx, "challenge-one", expires), store.ErrNoCeremony, "on any server")
	require.NoError(t, s.UseChallenge(ctx, "challenge-two", time.Now().Add(-61*time.Minute)))
	assert.Zero(t, count(t, s, `SELECT count(*) FROM pgsession.used_challenges WHERE position('challenge'::bytea IN challenge_hash) > 0`),
		"only hashes are kept")

	n, err := s.CleanupUsedChallenges(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "the one expired over an hour ago")
	assert.ErrorIs(t, s.UseChallenge(ctx, "challenge-one", expires), store.ErrNoCeremony, "the live one is kept")
}

// The key that seals ceremony cookies is made by the first server and read
// by every later one.
func TestCeremonyKeyIsMadeOnce(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s, other := newStoreAt(t, url, store.Options{}), newStoreAt(t, url, store.Options{})
	first, second := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)

	key, err := s.CeremonyKey(ctx, first)
	require.NoError(t, err)
	assert.Equal(t, first, key)
	key, err = other.CeremonyKey(ctx, second)
	require.NoError(t, err)
	assert.Equal(t, first, key, "a second server reads the first one's key")
}

// Failed passkey sign-ins count toward the address's limit of failed
// logins, with password failures, and a sign-in that worked is forgiven.
func TestPasskeyAttemptsCountTowardTheAddressLimit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	limits := store.Throttle{PerAccount: 10, PerIP: 3, Window: time.Minute}
	first, err := s.ReservePasskeyAttempt(ctx, "192.0.2.1", limits)
	require.NoError(t, err)
	require.False(t, first.Throttled())
	require.NoError(t, s.ReleaseAttempt(ctx, first), "a sign-in that worked")
	for range 2 {
		a, err := s.ReservePasskeyAttempt(ctx, "192.0.2.1", limits)
		require.NoError(t, err)
		require.False(t, a.Throttled())
	}
	_, err = s.ReserveLoginAttempt(ctx, "alice", "192.0.2.1", limits)
	require.NoError(t, err)
	a, err := s.ReservePasskeyAttempt(ctx, "192.0.2.1", limits)
	require.NoError(t, err)
	assert.True(t, a.Throttled(), "two passkey failures and a wrong password reach the limit of 3")
	assert.Positive(t, a.RetryAfter)
	other, err := s.ReservePasskeyAttempt(ctx, "198.51.100.1", limits)
	require.NoError(t, err)
	assert.False(t, other.Throttled(), "another address is not limited")
}
