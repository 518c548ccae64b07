package oidctest_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
)

// Each knob spoils one token, which the client refuses; the token after it
// is good again.
func TestEachKnobMakesTheClientRefuseTheToken(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, c := startWithAlice(t, oidctest.Options{})

	for _, tc := range []struct {
		knobs  oidctest.Knobs
		refuse func(t *testing.T, err error, idToken *oidc.IDToken, a attempt)
	}{
		{oidctest.Knobs{Audience: "another-client"}, func(t *testing.T, err error, _ *oidc.IDToken, _ attempt) {
			assert.ErrorContains(t, err, "expected audience")
		}},
		{oidctest.Knobs{Expired: true}, func(t *testing.T, err error, _ *oidc.IDToken, _ attempt) {
			var expired *oidc.TokenExpiredError
			assert.True(t, errors.As(err, &expired), "%v", err)
		}},
		{oidctest.Knobs{Issuer: "http://127.0.0.1:1"}, func(t *testing.T, err error, _ *oidc.IDToken, _ attempt) {
			assert.ErrorContains(t, err, "issued by a different provider")
		}},
		{oidctest.Knobs{SignWithOtherKey: true}, func(t *testing.T, err error, _ *oidc.IDToken, _ attempt) {
			assert.ErrorContains(t, err, "failed to verify signature")
		}},
		{oidctest.Knobs{Nonce: "not-the-clients"}, func(t *testing.T, err error, idToken *oidc.IDToken, a attempt) {
			// go-oidc leaves the nonce to the client, which compares it.
			require.NoError(t, err)
			assert.Equal(t, "not-the-clients", idToken.Nonce)
			assert.NotEqual(t, a.nonce, idToken.Nonce)
		}},
	} {
		p.Next(t, tc.knobs)
		a := c.signIn(t, alice.Subject)
		_, raw := c.exchange(t, ctx, a)
		idToken, err := c.verifier.Verify(ctx, raw)
		tc.refuse(t, err, idToken, a)
	}

	a := c.signIn(t, alice.Subject)
	_, raw := c.exchange(t, ctx, a)
	idToken, err := c.verifier.Verify(ctx, raw)
	require.NoError(t, err, "each knob served once")
	assert.Equal(t, a.nonce, idToken.Nonce)
}

// Knobs queue: two calls spoil the next two tokens, in order.
func TestKnobsQueue(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, c := startWithAlice(t, oidctest.Options{})
	first, second := c.signIn(t, alice.Subject), c.signIn(t, alice.Subject)
	p.Next(t, oidctest.Knobs{Audience: "one"})
	p.Next(t, oidctest.Knobs{Audience: "two"})
	for _, want := range []string{"one", "two"} {
		_, raw := c.exchange(t, ctx, first)
		assert.Equal(t, []any{want}, claimsOf(t, raw)["aud"])
		first = second
	}
}

func TestRotatedKeysVerifyAfterTheClientFetchesThemAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, c := startWithAlice(t, oidctest.Options{})

	first, _, err := c.idToken(t, ctx, alice.Subject)
	require.NoError(t, err)
	require.Equal(t, 1, p.Requests(t)["jwks"])
	oldKid := kidOf(t, first)

	newKid := p.RotateKeys(t)
	require.NotEqual(t, oldKid, newKid)
	assert.Equal(t, []string{newKid}, publishedKids(t, p), "the old key is no longer published")
	_, second := c.exchange(t, ctx, c.signIn(t, alice.Subject))
	assert.Equal(t, newKid, kidOf(t, second))
	fetched := p.Requests(t)["jwks"]
	_, err = c.verifier.Verify(ctx, second)
	require.NoError(t, err, "the client's key set fetches the new key")
	assert.Equal(t, fetched+1, p.Requests(t)["jwks"])

	// A client that never saw the old key cannot verify what it signed.
	fresh := newClient(t, ctx, p)
	_, err = fresh.verifier.Verify(ctx, first)
	assert.ErrorContains(t, err, "failed to verify signature")

	newest := p.RotateKeysKeepingOld(t)
	assert.Equal(t, []string{newest, newKid}, publishedKids(t, p))
	_, err = newClient(t, ctx, p).verifier.Verify(ctx, second)
	assert.NoError(t, err, "a key kept after the rotation still verifies")
	_, _, err = c.idToken(t, ctx, alice.Subject)
	assert.NoError(t, err)
}

func TestAStoppedProviderIsDownAndStartsAgainAsItWas(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, c := startWithAlice(t, oidctest.Options{})
	_, _, err := c.idToken(t, ctx, alice.Subject)
	require.NoError(t, err)
	issuer, addr := p.Issuer(), p.Addr()

	p.Stop()
	p.Stop()
	_, err = http.Get(issuer + "/.well-known/openid-configuration")
	require.Error(t, err, "nothing listens")
	_, err = oidc.NewProvider(ctx, issuer)
	require.Error(t, err, "discovery fails")

	p.Start()
	p.Start()
	assert.Equal(t, issuer, p.Issuer())
	assert.Equal(t, addr, p.Addr())
	_, err = oidc.NewProvider(ctx, issuer)
	require.NoError(t, err)
	_, _, err = c.idToken(t, ctx, alice.Subject)
	require.NoError(t, err, "the same user and keys")
	assert.Zero(t, p.Requests(t)["jwks"], "the keys are the ones the client has")
}

func claimsOf(t *testing.T, raw string) map[string]any {
	t.Helper()
	return jwsPart(t, raw, 1)
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	kid, _ := jwsPart(t, raw, 0)["kid"].(string)
	return kid
}

func jwsPart(t *testing.T, raw string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	require.Len(t, parts, 3)
	data, err := base64.RawURLEncoding.DecodeString(parts[i])
	require.NoError(t, err)
	out := map[string]any{}
	require.NoError(t, json.Unmarshal(data, &out))
	return out
}

func publishedKids(t *testing.T, p *oidctest.Provider) []string {
	t.Helper()
	resp, err := http.Get(p.Issuer() + "/jwks")
	require.NoError(t, err)
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&set))
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}
