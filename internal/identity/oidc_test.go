package identity

import (
	"cmp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
)

// The tests run the real OpenID provider of internal/oidctest, a process
// of its own on a free port, and a Provider speaking HTTP to it.

// callback is the redirect URI; the provider redirects the browser there,
// which the tests read and never dial.
const callback = "http://127.0.0.1:9/login/callback/test"

var ada = oidctest.User{
	Subject:           "ada-0001",
	Email:             "ada@example.com",
	EmailVerified:     true,
	PreferredUsername: "ada",
	Name:              "Ada Lovelace",
	Groups:            []string{"Staff", "/docs"},
	AMR:               []string{"pwd", "otp"},
}

// fast are Options that keep the tests short: seconds become tens of
// milliseconds.
var fast = Options{Timeout: 2 * time.Second, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	Recheck: 50 * time.Millisecond}

// startOIDC starts a provider that knows ada, and a started Provider of it
// with cfg's options.
func startOIDC(t *testing.T, cfg Config) (*oidctest.Provider, *Provider) {
	t.Helper()
	op := oidctest.StartProvider(t, oidctest.Options{ClientID: "docs", ClientSecret: "docs-secret-0123",
		RedirectURIs: []string{callback}, RequirePKCE: true})
	op.AddUser(t, ada)
	return op, clientOf(t, op, cfg)
}

// clientOf is a started Provider of op with cfg's options, and op's client
// unless cfg names another secret.
func clientOf(t *testing.T, op *oidctest.Provider, cfg Config) *Provider {
	t.Helper()
	cfg.Name, cfg.Issuer, cfg.ClientID = "test", op.Issuer(), op.ClientID()
	cfg.ClientSecret = cmp.Or(cfg.ClientSecret, op.ClientSecret())
	p, err := New(cfg, fast)
	require.NoError(t, err)
	p.Start(t.Context())
	t.Cleanup(p.Stop)
	waitAvailable(t, p, true)
	return p
}

// waitAvailable polls Available until it says want.
func waitAvailable(t *testing.T, p *Provider, want bool) string {
	t.Helper()
	var why string
	require.Eventually(t, func() bool {
		var ok bool
		ok, why = p.Available()
		return ok == want
	}, 10*time.Second, 10*time.Millisecond, "Available never said %v (last: %q)", want, why)
	return why
}

// flow is one sign-in's values, as the routes keep them.
type flow struct{ state, nonce, verifier string }

func newFlow() flow { return flow{NewNonce(), NewNonce(), NewVerifier()} }

// signIn signs in as user at the provider's login page and exchanges the
// code the callback gets, with nonce for the flow's own.
func signIn(t *testing.T, p *Provider, user string, nonce ...string) (Identity, error) {
	t.Helper()
	f := newFlow()
	code := authorize(t, p, f, user)
	if len(nonce) > 0 {
		f.nonce = nonce[0]
	}
	id, err := p.Exchange(t.Context(), code, f.verifier, f.nonce, callback)
	checkNoSecret(t, err, code, f, p.cfg.ClientSecret)
	return id, err
}

// authorize plays the browser from AuthURL to the callback, and returns
// the code.
func authorize(t *testing.T, p *Provider, f flow, user string) string {
	t.Helper()
	authURL := p.AuthURL(f.state, f.nonce, f.verifier, callback)
	require.NotEmpty(t, authURL)
	back := oidctest.SignIn(t, nil, authURL, user)
	require.Equal(t, "/login/callback/test", back.Path)
	q := back.Query()
	require.Equal(t, f.state, q.Get("state"), "the state comes back as sent")
	require.NoError(t, p.CallbackError(q))
	require.NotEmpty(t, q.Get("code"))
	return q.Get("code")
}

// checkNoSecret fails when err says any of the sign-in's secrets.
func checkNoSecret(t *testing.T, err error, code string, f flow, clientSecret string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []string{code, f.verifier, f.nonce, clientSecret} {
		if s == "" {
			continue
		}
		assert.NotContains(t, err.Error(), s, "the error holds a secret")
	}
}

// A sign-in gives the identity the ID token vouches for: the subject, a
// verified email, the name to suggest, the groups claim's groups and,
// trusted, the second factor its amr shows.
func TestOIDCSignIn(t *testing.T) {
	_, p := startOIDC(t, Config{Scopes: []string{"openid", "email", "profile", "groups"}, GroupsClaim: "groups",
		TrustProviderMFA: true, AllowDomains: []string{"example.com"}})
	id, err := signIn(t, p, ada.Subject)
	require.NoError(t, err)
	assert.Equal(t, Identity{Provider: "test", Subject: "ada-0001", Email: "ada@example.com", EmailVerified: true,
		UsernameHint: "ada", Name: "Ada Lovelace", Groups: []string{"staff", "docs"}, MFA: true}, id)
	ok, why := p.Admits(id)
	assert.True(t, ok, why)

	u := p.AuthURL("s", "the-nonce", NewVerifier(), callback)
	assert.Contains(t, u, "nonce=the-nonce")
	assert.Contains(t, u, "code_challenge_method=S256")
	assert.Contains(t, u, "scope=openid+email+profile+groups")
}

// amr counts for nothing unless trust_provider_mfa is on, and one factor
// is not two.
func TestOIDCSecondFactorNeedsTrust(t *testing.T) {
	op, p := startOIDC(t, Config{})
	id, err := signIn(t, p, ada.Subject)
	require.NoError(t, err)
	assert.False(t, id.MFA, "trust_provider_mfa is off")
	assert.Nil(t, id.Groups, "no groups_claim")

	trusting := clientOf(t, op, Config{TrustProviderMFA: true})
	id, err = signIn(t, trusting, ada.Subject)
	require.NoError(t, err)
	assert.True(t, id.MFA, "pwd and otp are two kinds of factor")
	op.AddUser(t, oidctest.User{Subject: "bob", Email: "bob@example.com", EmailVerified: true, AMR: []string{"pwd"}})
	bob, err := signIn(t, trusting, "bob")
	require.NoError(t, err)
	assert.False(t, bob.MFA, "a password alone")
}

// An ID token for another audience, expired, with another nonce, from
// another issuer or signed with a key the provider never published is
// refused as invalid, not as the provider down; the next good one passes.
func TestOIDCRefusesBadTokens(t *testing.T) {
	op, p := startOIDC(t, Config{})
	for name, tc := range map[string]struct {
		knobs oidctest.Knobs
		why   string // what the log is told
	}{
		"another audience": {oidctest.Knobs{Audience: "another-client"}, `expected audience "docs"`},
		"expired":          {oidctest.Knobs{Expired: true}, "token is expired"},
		"another nonce":    {oidctest.Knobs{Nonce: "a-nonce-of-another-sign-in"}, "nonce is not this sign-in's"},
		"another issuer":   {oidctest.Knobs{Issuer: "https://evil.example"}, "issued by a different provider"},
		"another key":      {oidctest.Knobs{SignWithOtherKey: true}, "failed to verify"},
	} {
		t.Run(name, func(t *testing.T) {
			op.Next(t, tc.knobs)
			_, err := signIn(t, p, ada.Subject)
			require.ErrorIs(t, err, ErrInvalidToken)
			assert.Contains(t, err.Error(), tc.why)
			ok, why := p.Available()
			assert.True(t, ok, "a bad token is not the provider down: %s", why)
			_, err = signIn(t, p, ada.Subject)
			assert.NoError(t, err, "the next token is good")
		})
	}
	t.Run("the flow's own nonce differs", func(t *testing.T) {
		_, err := signIn(t, p, ada.Subject, NewNonce())
		require.ErrorIs(t, err, ErrInvalidToken)
		assert.Contains(t, err.Error(), "nonce is not this sign-in's")
	})
	t.Run("no nonce", func(t *testing.T) {
		_, err := signIn(t, p, ada.Subject, "")
		require.ErrorIs(t, err, ErrInvalidToken)
	})
}

// A code is good once, with its own verifier and redirect URI: a replay, a
// PKCE verifier of another flow, or a made-up code is refused as a code to
// start again with, a wrong client secret as the admin's to fix.
func TestOIDCRefusesBadCodes(t *testing.T) {
	op, p := startOIDC(t, Config{})
	f := newFlow()
	code := authorize(t, p, f, ada.Subject)
	_, err := p.Exchange(t.Context(), code, f.verifier, f.nonce, callback)
	require.NoError(t, err)
	_, err = p.Exchange(t.Context(), code, f.verifier, f.nonce, callback)
	require.ErrorIs(t, err, ErrInvalidCode, "a replayed code")
	checkNoSecret(t, err, code, f, op.ClientSecret())

	f = newFlow()
	code = authorize(t, p, f, ada.Subject)
	_, err = p.Exchange(t.Context(), code, NewVerifier(), f.nonce, callback)
	require.ErrorIs(t, err, ErrInvalidCode, "another flow's verifier")

	_, err = p.Exchange(t.Context(), "made-up", f.verifier, f.nonce, callback)
	require.ErrorIs(t, err, ErrInvalidCode)
	_, err = p.Exchange(t.Context(), "", f.verifier, f.nonce, callback)
	require.ErrorIs(t, err, ErrInvalidCode)

	wrong := clientOf(t, op, Config{ClientSecret: "not-the-secret"})
	f = newFlow()
	code = authorize(t, wrong, f, ada.Subject)
	_, err = wrong.Exchange(t.Context(), code, f.verifier, f.nonce, callback)
	require.ErrorIs(t, err, ErrMisconfigured)
	checkNoSecret(t, err, code, f, "not-the-secret")
	ok, _ := wrong.Available()
	assert.True(t, ok, "a refused client is not a provider down")
}

// The user pressing Deny comes back with error=access_denied and the
// flow's state, which CallbackError tells apart.
func TestOIDCAccessDenied(t *testing.T) {
	_, p := startOIDC(t, Config{})
	f := newFlow()
	back := oidctest.Deny(t, nil, p.AuthURL(f.state, f.nonce, f.verifier, callback))
	assert.Equal(t, f.state, back.Query().Get("state"))
	err := p.CallbackError(back.Query())
	require.ErrorIs(t, err, ErrDenied)
	assert.Contains(t, err.Error(), `error="access_denied"`)
}

// An email that is not verified decides nothing: with an email list the
// sign-in is refused, without one it goes on with the email unverified.
func TestOIDCUnverifiedEmail(t *testing.T) {
	op, strict := startOIDC(t, Config{AllowDomains: []string{"example.com"}})
	op.AddUser(t, oidctest.User{Subject: "eve", Email: "eve@example.com"})
	_, err := signIn(t, strict, "eve")
	require.ErrorIs(t, err, ErrEmailNotVerified)

	lax := clientOf(t, op, Config{})
	id, err := signIn(t, lax, "eve")
	require.NoError(t, err)
	assert.Equal(t, "eve@example.com", id.Email)
	assert.False(t, id.EmailVerified)
	assert.Equal(t, "eve", id.UsernameHint, "the email's local part without preferred_username")
	ok, why := lax.Admits(id)
	assert.False(t, ok)
	assert.Contains(t, why, "no allow list")
}

// A new signing key, published alone or beside the old one, is fetched
// when a token names it: sign-ins go on across rotations.
func TestOIDCKeyRotation(t *testing.T) {
	op, p := startOIDC(t, Config{})
	_, err := signIn(t, p, ada.Subject)
	require.NoError(t, err)
	before := op.Requests(t)["jwks"]
	_, err = signIn(t, p, ada.Subject)
	require.NoError(t, err)
	assert.Equal(t, before, op.Requests(t)["jwks"], "the keys are kept between sign-ins")

	op.RotateKeys(t)
	_, err = signIn(t, p, ada.Subject)
	require.NoError(t, err, "the new key is fetched")
	assert.Greater(t, op.Requests(t)["jwks"], before)
	op.RotateKeysKeepingOld(t)
	_, err = signIn(t, p, ada.Subject)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(op.Issuer(), "http://127.0.0.1:"))
}
