package oidctest_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
)

// callback is the client's redirect URI; the tests read the redirect to
// it and never dial it.
const callback = "http://127.0.0.1:9/oidc/callback"

var alice = oidctest.User{
	Subject:           "alice-0001",
	Email:             "alice@example.com",
	EmailVerified:     true,
	PreferredUsername: "alice",
	Name:              "Alice Liddell",
	Groups:            []string{"staff", "docs"},
	AMR:               []string{"pwd", "otp"},
	ACR:               "urn:example:mfa",
}

// client is a relying party as the plugin will be one: go-oidc for
// discovery and verification, x/oauth2 for the code flow.
type client struct {
	op       *oidc.Provider
	config   oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newClient(t *testing.T, ctx context.Context, p *oidctest.Provider) *client {
	t.Helper()
	op, err := oidc.NewProvider(ctx, p.Issuer())
	require.NoError(t, err)
	return &client{
		op: op,
		config: oauth2.Config{ClientID: p.ClientID(), ClientSecret: p.ClientSecret(), Endpoint: op.Endpoint(),
			RedirectURL: callback, Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"}},
		verifier: op.Verifier(&oidc.Config{ClientID: p.ClientID()}),
	}
}

// startWithAlice starts a provider that knows alice, for the client's
// callback unless opts name redirect URIs, and a client of it.
func startWithAlice(t *testing.T, opts oidctest.Options) (*oidctest.Provider, *client) {
	t.Helper()
	if opts.RedirectURIs == nil {
		opts.RedirectURIs = []string{callback}
	}
	p := oidctest.StartProvider(t, opts)
	p.AddUser(t, alice)
	return p, newClient(t, t.Context(), p)
}

// idToken signs in as user and returns the ID token and what the
// client's verifier made of it.
func (c *client) idToken(t *testing.T, ctx context.Context, user string) (string, *oidc.IDToken, error) {
	t.Helper()
	_, raw := c.exchange(t, ctx, c.signIn(t, user))
	idToken, err := c.verifier.Verify(ctx, raw)
	return raw, idToken, err
}

// attempt is one sign-in: what the client sent and what came back.
type attempt struct {
	state, nonce, verifier string
	back                   *url.URL
}

// signIn starts the flow with PKCE, state and nonce, and signs in as user
// at the login page.
func (c *client) signIn(t *testing.T, user string) attempt {
	t.Helper()
	a := attempt{state: rand.Text(), nonce: rand.Text(), verifier: oauth2.GenerateVerifier()}
	a.back = oidctest.SignIn(t, nil, c.config.AuthCodeURL(a.state, oauth2.S256ChallengeOption(a.verifier), oidc.Nonce(a.nonce)), user)
	require.True(t, strings.HasPrefix(a.back.String(), callback+"?"), "sent back to %s", a.back)
	require.Equal(t, a.state, a.back.Query().Get("state"))
	require.NotEmpty(t, a.back.Query().Get("code"), "sent back to %s", a.back)
	return a
}

// exchange trades the code for tokens and returns the raw ID token.
func (c *client) exchange(t *testing.T, ctx context.Context, a attempt) (*oauth2.Token, string) {
	t.Helper()
	tok, err := c.config.Exchange(ctx, a.back.Query().Get("code"), oauth2.VerifierOption(a.verifier))
	require.NoError(t, err)
	raw, ok := tok.Extra("id_token").(string)
	require.True(t, ok, "the token answer has an id_token")
	return tok, raw
}

func TestDiscoveryAnswers(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{RedirectURIs: []string{callback}})
	require.True(t, strings.HasPrefix(p.Issuer(), "http://127.0.0.1:"), p.Issuer())

	resp, err := http.Get(p.Issuer() + "/.well-known/openid-configuration")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var doc map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	assert.Equal(t, p.Issuer(), doc["issuer"])
	assert.Equal(t, p.Issuer()+"/authorize", doc["authorization_endpoint"])
	assert.Equal(t, p.Issuer()+"/token", doc["token_endpoint"])
	assert.Equal(t, p.Issuer()+"/jwks", doc["jwks_uri"])
	assert.Equal(t, []any{"S256"}, doc["code_challenge_methods_supported"])

	op, err := oidc.NewProvider(t.Context(), p.Issuer())
	require.NoError(t, err, "go-oidc takes the document, whose issuer is the URL it was fetched from")
	assert.Equal(t, p.Issuer()+"/token", op.Endpoint().TokenURL)
	assert.Equal(t, 2, p.Requests(t)["discovery"])
}

func TestCodeFlowWithPKCEVerifiesTheIDToken(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := oidctest.StartProvider(t, oidctest.Options{RedirectURIs: []string{callback}})
	p.AddUser(t, alice)
	p.AddUser(t, oidctest.User{Subject: "bob-0002", Email: "bob@example.com"})
	c := newClient(t, ctx, p)

	a := c.signIn(t, alice.Subject)
	tok, raw := c.exchange(t, ctx, a)
	idToken, err := c.verifier.Verify(ctx, raw)
	require.NoError(t, err)
	assert.Equal(t, alice.Subject, idToken.Subject)
	assert.Equal(t, a.nonce, idToken.Nonce, "the nonce of the authorization request")
	assert.Equal(t, p.Issuer(), idToken.Issuer)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), tok.Expiry, time.Minute, "expires_in counts seconds")
	var claims struct {
		Email             string   `json:"email"`
		EmailVerified     bool     `json:"email_verified"`
		PreferredUsername string   `json:"preferred_username"`
		Name              string   `json:"name"`
		Groups            []string `json:"groups"`
		AMR               []string `json:"amr"`
		ACR               string   `json:"acr"`
	}
	require.NoError(t, idToken.Claims(&claims))
	assert.Equal(t, alice.Email, claims.Email)
	assert.True(t, claims.EmailVerified)
	assert.Equal(t, alice.PreferredUsername, claims.PreferredUsername)
	assert.Equal(t, alice.Name, claims.Name)
	assert.Equal(t, alice.Groups, claims.Groups)
	assert.Equal(t, alice.AMR, claims.AMR)
	assert.Equal(t, alice.ACR, claims.ACR)

	info, err := c.op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	require.NoError(t, err)
	assert.Equal(t, alice.Email, info.Email)

	_, err = c.config.Exchange(ctx, a.back.Query().Get("code"), oauth2.VerifierOption(a.verifier))
	assert.ErrorContains(t, err, "invalid_grant", "a code serves once")

	b := c.signIn(t, "bob-0002")
	_, err = c.config.Exchange(ctx, b.back.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
	assert.ErrorContains(t, err, "invalid_grant", "PKCE: another verifier than the challenge's")
	b = c.signIn(t, "bob-0002")
	_, err = c.config.Exchange(ctx, b.back.Query().Get("code"))
	assert.ErrorContains(t, err, "invalid_grant", "PKCE: no verifier")

	b = c.signIn(t, "bob-0002")
	_, raw = c.exchange(t, ctx, b)
	idToken, err = c.verifier.Verify(ctx, raw)
	require.NoError(t, err)
	require.NoError(t, idToken.Claims(&claims))
	assert.False(t, claims.EmailVerified, "email_verified is false, not left out")
	assert.Equal(t, "bob@example.com", claims.Email)
}

func TestTheClientAuthenticatesEitherWay(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := oidctest.StartProvider(t, oidctest.Options{ClientID: "docs-site", ClientSecret: "s3cret/+=", RedirectURIs: []string{callback}})
	p.AddUser(t, alice)
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		c := newClient(t, ctx, p)
		c.config.Endpoint.AuthStyle = style
		_, _, err := c.idToken(t, ctx, alice.Subject)
		assert.NoError(t, err, "auth style %d", style)

		c.config.ClientSecret = "wrong"
		_, err = c.config.Exchange(ctx, c.signIn(t, alice.Subject).back.Query().Get("code"))
		assert.ErrorContains(t, err, "invalid_client", "auth style %d", style)
	}
}

func TestTheLoginPageRefuses(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, c := startWithAlice(t, oidctest.Options{RequirePKCE: true})
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// A redirect URI or client it does not know gets a page, never a redirect.
	for _, mutate := range []func(*oauth2.Config){
		func(cfg *oauth2.Config) { cfg.RedirectURL = "http://127.0.0.1:9/elsewhere" },
		func(cfg *oauth2.Config) { cfg.ClientID = "stranger" },
	} {
		cfg := c.config
		mutate(&cfg)
		resp, err := noRedirects.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Location"))
	}

	for name, authURL := range map[string]string{
		"no PKCE":     c.config.AuthCodeURL("st"),
		"plain PKCE":  c.config.AuthCodeURL("st", oauth2.SetAuthURLParam("code_challenge", "abc"), oauth2.SetAuthURLParam("code_challenge_method", "plain")),
		"no method":   c.config.AuthCodeURL("st", oauth2.SetAuthURLParam("code_challenge", "abc")),
		"other scope": c.config.AuthCodeURL("st", oauth2.S256ChallengeOption("v"), oauth2.SetAuthURLParam("scope", "openid offline_access")),
	} {
		back := oidctest.SignIn(t, nil, authURL, alice.Subject)
		assert.NotEmpty(t, back.Query().Get("error"), "%s: %s", name, back)
		assert.Equal(t, "st", back.Query().Get("state"), name)
		assert.Empty(t, back.Query().Get("code"), name)
	}

	back := oidctest.Deny(t, nil, c.config.AuthCodeURL("denied-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	assert.True(t, strings.HasPrefix(back.String(), callback+"?"), back.String())
	assert.Equal(t, "access_denied", back.Query().Get("error"))
	assert.Equal(t, "denied-state", back.Query().Get("state"))

	// The token request repeats the authorization request's redirect URI.
	const other = "http://127.0.0.1:9/other/callback"
	p.AllowRedirectURI(t, other)
	a := c.signIn(t, alice.Subject)
	cfg := c.config
	cfg.RedirectURL = other
	_, err := cfg.Exchange(ctx, a.back.Query().Get("code"), oauth2.VerifierOption(a.verifier))
	assert.ErrorContains(t, err, "invalid_grant")
	back = oidctest.SignIn(t, nil, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption("v")), alice.Subject)
	assert.True(t, strings.HasPrefix(back.String(), other+"?"), "an allowed URI added later: %s", back)
}

func TestTheIssuerMayNameAHost(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{Host: "idp.example.test", RedirectURIs: []string{callback}})
	_, port, err := net.SplitHostPort(p.Addr())
	require.NoError(t, err)
	assert.Equal(t, "http://idp.example.test:"+port, p.Issuer())

	dialer := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, p.Addr())
	}}}
	ctx := oidc.ClientContext(t.Context(), hc)
	p.AddUser(t, alice)
	c := newClient(t, ctx, p)
	a := attempt{state: "st", verifier: oauth2.GenerateVerifier()}
	a.back = oidctest.SignIn(t, hc, c.config.AuthCodeURL(a.state, oauth2.S256ChallengeOption(a.verifier)), alice.Subject)
	_, raw := c.exchange(t, ctx, a)
	_, err = c.verifier.Verify(ctx, raw)
	assert.NoError(t, err)
}
