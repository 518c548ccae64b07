package store_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest/migrated"
	"github.com/pgsession/caddy-pgsession/store"
)

func beginFlow(t *testing.T, s *store.Store, f store.IdentityFlow) *store.IdentityFlow {
	t.Helper()
	got, err := s.BeginIdentityFlow(context.Background(), f)
	require.NoError(t, err)
	return got
}

// A flow begun on one server is finished on another sharing the database,
// once, with what it was begun with.
func TestIdentityFlowFinishesOnceOnAnyServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migrated.NewDatabase(t)
	one, other := openStore(t, url, store.Options{}), openStore(t, url, store.Options{})
	alice := newUser(t, one, "alice")

	f := beginFlow(t, one, store.IdentityFlow{Provider: "google", Redirect: "/docs/?page=2", LinkUserID: alice.ID})
	for _, v := range []string{f.State, f.Binding, f.Nonce, f.PKCEVerifier} {
		assert.True(t, store.ValidToken(v), "256 random bits: %q", v)
	}
	assert.Len(t, map[string]bool{f.State: true, f.Binding: true, f.Nonce: true, f.PKCEVerifier: true}, 4)
	assert.WithinDuration(t, f.CreatedAt.Add(store.IdentityFlowLifetime), f.ExpiresAt, time.Second)

	got, err := other.TakeIdentityFlow(ctx, "google", f.State, f.Binding)
	require.NoError(t, err)
	assert.Equal(t, f, got)
	_, err = other.TakeIdentityFlow(ctx, "google", f.State, f.Binding)
	assert.ErrorIs(t, err, store.ErrFlowNotFound, "a replayed callback")
	_, err = one.TakeIdentityFlow(ctx, "google", f.State, f.Binding)
	assert.ErrorIs(t, err, store.ErrFlowNotFound, "nor on the first server")

	given := beginFlow(t, one, store.IdentityFlow{Provider: "github", Nonce: "n", PKCEVerifier: strings.Repeat("v~", 22)})
	got, err = one.TakeIdentityFlow(ctx, "github", given.State, given.Binding)
	require.NoError(t, err)
	assert.Equal(t, "n", got.Nonce)
	assert.Equal(t, strings.Repeat("v~", 22), got.PKCEVerifier)
	assert.Empty(t, got.LinkUserID, "a sign-in links nobody")
}

// The callback takes a flow only with the browser's flow cookie and the
// provider it was begun for: a state that leaked finishes nothing
// elsewhere, and does not spoil the sign-in it belongs to.
func TestIdentityFlowNeedsItsCookieAndProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	f := beginFlow(t, s, store.IdentityFlow{Provider: "google"})
	stranger := beginFlow(t, s, store.IdentityFlow{Provider: "google"}).Binding

	for _, tc := range []struct{ what, provider, state, binding string }{
		{"another browser's cookie", "google", f.State, stranger},
		{"no cookie", "google", f.State, ""},
		{"a cookie of another shape", "google", f.State, f.Binding + "x"},
		{"another provider's callback", "github", f.State, f.Binding},
		{"a bad provider name", "Google", f.State, f.Binding},
		{"an unknown state", "google", strings.Repeat("A", store.TokenLength), f.Binding},
		{"the cookie as the state", "google", f.Binding, f.Binding},
	} {
		_, err := s.TakeIdentityFlow(ctx, tc.provider, tc.state, tc.binding)
		assert.ErrorIs(t, err, store.ErrFlowNotFound, tc.what)
		assert.Equal(t, store.ErrFlowNotFound.Error(), err.Error(), "%s: nothing says which case it was", tc.what)
	}
	_, err := s.TakeIdentityFlow(ctx, "google", f.State, f.Binding)
	assert.NoError(t, err, "the flow's own browser still finishes it")
}

// One browser signing in from several tabs keeps one flow cookie: each
// tab's flow finishes on its own, in any order.
func TestIdentityFlowsOfOneBrowser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	first := beginFlow(t, s, store.IdentityFlow{Provider: "google", Redirect: "/a"})
	second := beginFlow(t, s, store.IdentityFlow{Provider: "google", Redirect: "/b", Binding: first.Binding})
	assert.Equal(t, first.Binding, second.Binding, "the browser's cookie is kept")
	assert.NotEqual(t, first.State, second.State)
	for _, bad := range []string{"", "not a token", first.Binding[1:]} {
		assert.NotEqual(t, first.Binding, beginFlow(t, s, store.IdentityFlow{Provider: "google", Binding: bad}).Binding,
			"%q is no cookie of the store's: a new one", bad)
	}

	got, err := s.TakeIdentityFlow(ctx, "google", second.State, second.Binding)
	require.NoError(t, err)
	assert.Equal(t, "/b", got.Redirect)
	got, err = s.TakeIdentityFlow(ctx, "google", first.State, first.Binding)
	require.NoError(t, err)
	assert.Equal(t, "/a", got.Redirect)
}

// Callbacks racing with one state (a double click, a reload): one takes
// the flow, every round.
func TestRacingCallbacksTakeAFlowOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	for round := range 10 {
		f := beginFlow(t, s, store.IdentityFlow{Provider: "google"})
		taken := race(t, 8, store.ErrFlowNotFound, func(int) error {
			_, err := s.TakeIdentityFlow(ctx, "google", f.State, f.Binding)
			return err
		})
		assert.Equal(t, 1, taken, "round %d", round)
	}
}

// A flow lasts IdentityFlowLifetime by the database's clock; an expired
// one finishes nothing and the cleanup deletes it.
func TestIdentityFlowsExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	old := beginFlow(t, s, store.IdentityFlow{Provider: "google"})
	live := beginFlow(t, s, store.IdentityFlow{Provider: "google"})
	exec(t, s, `UPDATE pgsession.identity_flows SET expires_at = now() - interval '1 second' WHERE id = $1`,
		string(store.HashToken(old.State)))

	_, err := s.TakeIdentityFlow(ctx, "google", old.State, old.Binding)
	assert.ErrorIs(t, err, store.ErrFlowNotFound, "a stale callback")
	c, ran, err := s.RunCleanup(ctx, "test", time.Minute)
	require.NoError(t, err)
	require.True(t, ran)
	assert.Equal(t, int64(1), c.IdentityFlows)
	_, err = s.TakeIdentityFlow(ctx, "google", live.State, live.Binding)
	assert.NoError(t, err, "the cleanup leaves live flows")
}

// The database holds no value that finishes a flow or serves at the
// provider: the state and the cookie only as hashes, the nonce and the
// verifier sealed under the cookie, each bound to its flow.
func TestIdentityFlowSecretsAreNotInTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	f := beginFlow(t, s, store.IdentityFlow{Provider: "google"})
	var id, binding string
	var nonce, verifier []byte
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT id, binding, nonce, pkce_verifier FROM pgsession.identity_flows`).
		Scan(&id, &binding, &nonce, &verifier))
	assert.Equal(t, string(store.HashToken(f.State)), id)
	assert.Equal(t, string(store.HashToken(f.Binding)), binding)
	for _, secret := range []string{f.State, f.Binding, f.Nonce, f.PKCEVerifier} {
		for _, column := range [][]byte{[]byte(id), []byte(binding), nonce, verifier} {
			assert.False(t, bytes.Contains(column, []byte(secret)), "a secret in the clear")
		}
	}

	// A sealed value moved to another flow of the same cookie, or between
	// the columns, does not open.
	g := beginFlow(t, s, store.IdentityFlow{Provider: "google", Binding: f.Binding})
	exec(t, s, `UPDATE pgsession.identity_flows SET nonce = $1 WHERE id = $2`, nonce, string(store.HashToken(g.State)))
	exec(t, s, `UPDATE pgsession.identity_flows SET nonce = pkce_verifier WHERE id = $1`, id)
	for _, flow := range []*store.IdentityFlow{f, g} {
		_, err := s.TakeIdentityFlow(ctx, "google", flow.State, flow.Binding)
		assert.ErrorIs(t, err, store.ErrFlowNotFound)
	}
}

func TestBeginIdentityFlowRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	for _, bad := range []store.IdentityFlow{
		{Provider: "Google"},
		{Provider: "google", Redirect: "/" + strings.Repeat("x", store.MaxFlowRedirectLength)},
		{Provider: "google", Redirect: "/\xff"},
		{Provider: "google", PKCEVerifier: "too short"},
		{Provider: "google", PKCEVerifier: strings.Repeat("a", 42) + "+"},
		{Provider: "google", Nonce: strings.Repeat("n", 257)},
	} {
		var input *store.InputError
		_, err := s.BeginIdentityFlow(ctx, bad)
		assert.ErrorAs(t, err, &input, "%+v", bad)
	}
	_, err := s.BeginIdentityFlow(ctx, store.IdentityFlow{Provider: "google", LinkUserID: "00000000-0000-0000-0000-000000000000"})
	assert.ErrorIs(t, err, store.ErrUserNotFound)
	assert.Zero(t, count(t, s, `SELECT count(*) FROM pgsession.identity_flows`))

	link := beginFlow(t, s, store.IdentityFlow{Provider: "google", LinkUserID: alice.ID})
	require.NoError(t, s.DeleteUser(ctx, "alice"))
	_, err = s.TakeIdentityFlow(ctx, "google", link.State, link.Binding)
	assert.ErrorIs(t, err, store.ErrFlowNotFound, "a link flow goes with its user")
}
