package identity

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
)

// A provider that is down when Caddy starts does not stop the start: its
// discovery fails in the background, Available says why, it is tried
// again, and once the provider is up it can be used, with no restart.
func TestOIDCDiscoveryFailsThenSucceeds(t *testing.T) {
	op := oidctest.StartProvider(t, oidctest.Options{RedirectURIs: []string{callback}})
	op.AddUser(t, ada)
	op.Stop()
	core, logs := observer.New(zap.InfoLevel)
	opts := fast
	opts.Logger = zap.New(core)
	p, err := New(Config{Name: "test", Issuer: op.Issuer(), ClientID: op.ClientID(), ClientSecret: op.ClientSecret()}, opts)
	require.NoError(t, err)
	began := time.Now()
	p.Start(t.Context())
	assert.Less(t, time.Since(began), 50*time.Millisecond, "Start does not wait for the provider")
	t.Cleanup(p.Stop)

	why := waitAvailable(t, p, false)
	require.Eventually(t, func() bool { _, why = p.Available(); return strings.HasPrefix(why, "discovery at ") },
		5*time.Second, 10*time.Millisecond)
	assert.Contains(t, why, "connection refused")
	assert.Empty(t, p.AuthURL("s", "n", NewVerifier(), callback), "no sign-in can start")
	time.Sleep(300 * time.Millisecond) // a few retries, which log once
	assert.Equal(t, 1, logs.FilterMessageSnippet("unavailable").Len(), "each change is logged once, not each retry")

	op.Start()
	waitAvailable(t, p, true)
	assert.Equal(t, 1, logs.FilterMessage("identity provider available").Len())
	_, err = signIn(t, p, ada.Subject)
	require.NoError(t, err)
}

// A provider that goes down after it was found makes the sign-in that
// meets it fail as unavailable, at once rather than at the timeout, and
// Available says so until it answers again.
func TestOIDCProviderDown(t *testing.T) {
	op, p := startOIDC(t, Config{})
	f := newFlow()
	code := authorize(t, p, f, ada.Subject)
	op.Stop()
	began := time.Now()
	_, err := p.Exchange(t.Context(), code, f.verifier, f.nonce, callback)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Less(t, time.Since(began), time.Second)
	checkNoSecret(t, err, code, f, op.ClientSecret())
	ok, why := p.Available()
	assert.False(t, ok)
	assert.Contains(t, why, "connection refused")

	op.Start()
	waitAvailable(t, p, true)
	_, err = signIn(t, p, ada.Subject)
	require.NoError(t, err)

	// Unasked, a provider that stopped answering is found out when the
	// login page asks after Recheck.
	op.Stop()
	waitAvailable(t, p, false)
	op.Start()
	waitAvailable(t, p, true)
}

// The keys out of reach are the provider unavailable, not a token invalid:
// after a rotation the new key must be fetched, and the key set is down.
func TestOIDCKeysOutOfReach(t *testing.T) {
	op, p := startOIDC(t, Config{})
	_, err := signIn(t, p, ada.Subject)
	require.NoError(t, err)
	op.RotateKeys(t)
	f := newFlow()
	code := authorize(t, p, f, ada.Subject)
	// The token endpoint answers; the keys then do not.
	call := secrets{code: code, verifier: f.verifier, nonce: f.nonce}
	token, err := p.exchangeCode(t.Context(), p.oauth2Config(p.discovered().endpoint, callback), call)
	require.NoError(t, err)
	op.Stop()
	_, err = p.identityOf(t.Context(), p.discovered(), token, call)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "fetching the provider's keys")
	ok, _ := p.Available()
	assert.False(t, ok)
	op.Start()
	waitAvailable(t, p, true)
}

// A provider that takes connections and never answers holds nothing for
// longer than the timeout: not the start, not the check, not a sign-in.
func TestProviderThatNeverAnswers(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	opts := fast
	opts.Timeout = 300 * time.Millisecond
	for _, cfg := range []Config{{Issuer: "http://" + silent.Addr().String()},
		{GitHub: true, GitHubURL: "http://" + silent.Addr().String(), GitHubAPIURL: "http://" + silent.Addr().String()}} {
		cfg.Name, cfg.ClientID, cfg.ClientSecret = "silent", "id", "secret"
		p, err := New(cfg, opts)
		require.NoError(t, err)
		p.Start(t.Context())
		t.Cleanup(p.Stop)
		var why string
		require.Eventually(t, func() bool { _, why = p.Available(); return strings.Contains(why, "no answer within 300ms") },
			5*time.Second, 10*time.Millisecond, "GitHub %v: %s", cfg.GitHub, why)
		began := time.Now()
		_, err = p.Exchange(t.Context(), "code", NewVerifier(), "nonce", callback)
		require.ErrorIs(t, err, ErrUnavailable)
		assert.Less(t, time.Since(began), time.Second, "GitHub %v", cfg.GitHub)
	}
}
