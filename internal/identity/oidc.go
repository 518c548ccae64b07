package identity

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// discovery is what an OpenID provider's discovery document says, with the
// verifier of its ID tokens.
type discovery struct {
	endpoint oauth2.Endpoint
	jwksURL  string
	keys     *keySet
	verifier *oidc.IDTokenVerifier
}

// signingAlgs are the algorithms go-oidc verifies; a provider's list is
// cut to them, as go-oidc's own Verifier does.
var signingAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

// discover reads the provider's discovery document. The keys are kept
// while their address stays the same, so a check does not throw away what
// was fetched.
func (p *Provider) discover(ctx context.Context) error {
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, p.client), p.cfg.Issuer)
	if err != nil {
		return fmt.Errorf("discovery at %s: %w", p.cfg.Issuer, err)
	}
	var meta struct {
		JWKSURL     string   `json:"jwks_uri"`
		Algs        []string `json:"id_token_signing_alg_values_supported"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := op.Claims(&meta); err != nil {
		return fmt.Errorf("discovery at %s: %w", p.cfg.Issuer, err)
	}
	if meta.JWKSURL == "" {
		return fmt.Errorf("discovery at %s: the document has no jwks_uri", p.cfg.Issuer)
	}
	var algs []string
	for _, alg := range meta.Algs {
		if slices.Contains(signingAlgs, alg) {
			algs = append(algs, alg)
		}
	}
	endpoint := op.Endpoint()
	// The client authenticates as the provider says it may, Basic first as
	// the standard's default; guessing would send each code twice.
	endpoint.AuthStyle = oauth2.AuthStyleInHeader
	if len(meta.AuthMethods) > 0 && !slices.Contains(meta.AuthMethods, "client_secret_basic") &&
		slices.Contains(meta.AuthMethods, "client_secret_post") {
		endpoint.AuthStyle = oauth2.AuthStyleInParams
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	keys := newKeySet(p.client, meta.JWKSURL)
	if p.found != nil && p.found.jwksURL == meta.JWKSURL {
		keys = p.found.keys
	}
	p.found = &discovery{endpoint: endpoint, jwksURL: meta.JWKSURL, keys: keys,
		verifier: oidc.NewVerifier(p.cfg.Issuer, keys, &oidc.Config{ClientID: p.cfg.ClientID, SupportedSigningAlgs: algs})}
	return nil
}

// keySet is the provider's keys, which go-oidc fetches again when a token
// names one it does not hold: that is how a rotation is followed. It notes
// a fetch that failed, which the verifier's error no longer carries, so
// that keys out of reach make the provider unavailable rather than the
// token invalid.
type keySet struct{ remote *oidc.RemoteKeySet }

func newKeySet(client *http.Client, url string) *keySet {
	return &keySet{oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), client), url)}
}

type fetchNote struct{ err error }

type fetchNoteKey struct{}

func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.remote.VerifySignature(ctx, jwt)
	// go-oidc wraps the error of a fetch, and makes the other, a signature
	// no key verifies, of its own: only the first unwraps.
	if err != nil && errors.Unwrap(err) != nil {
		if note, ok := ctx.Value(fetchNoteKey{}).(*fetchNote); ok {
			note.err = err
		}
	}
	return payload, err
}

// discovered is what discovery found last, or nil.
func (p *Provider) discovered() *discovery {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.found
}

// oidcClaims are the claims of an ID token read here; the groups claim is
// read apart, by its configured name.
type oidcClaims struct {
	Email             string   `json:"email"`
	EmailVerified     any      `json:"email_verified"`
	Name              string   `json:"name"`
	PreferredUsername string   `json:"preferred_username"`
	AMR               []string `json:"amr"`
	ACR               string   `json:"acr"`
}

// exchangeOIDC turns the code into a verified identity.
func (p *Provider) exchangeOIDC(ctx context.Context, call secrets, redirectURI string) (Identity, error) {
	found := p.discovered()
	if found == nil {
		_, why := p.Available()
		return Identity{}, p.fail(ErrUnavailable, "%s", why)
	}
	token, err := p.exchangeCode(ctx, p.oauth2Config(found.endpoint, redirectURI), call)
	if err != nil {
		return Identity{}, err
	}
	return p.identityOf(ctx, found, token, call)
}

// identityOf verifies the ID token of the token response and reads it.
func (p *Provider) identityOf(ctx context.Context, found *discovery, token *oauth2.Token, call secrets) (Identity, error) {
	raw, _ := token.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, p.fail(ErrInvalidToken, "the token response has no id_token (is openid among the scopes?)")
	}
	call.others = append(call.others, raw, token.AccessToken)
	note := new(fetchNote)
	idToken, err := found.verifier.Verify(context.WithValue(ctx, fetchNoteKey{}, note), raw)
	if note.err != nil {
		return Identity{}, p.unreachable("fetching the provider's keys: " + call.redact(note.err.Error()))
	}
	if err != nil {
		return Identity{}, p.fail(ErrInvalidToken, "%s", call.redact(err.Error()))
	}
	// The nonce ties the token to this flow's cookie: a token made for
	// another browser's sign-in does not sign this one in.
	if call.nonce == "" || subtle.ConstantTimeCompare([]byte(idToken.Nonce), []byte(call.nonce)) != 1 {
		return Identity{}, p.fail(ErrInvalidToken, "the ID token's nonce is not this sign-in's")
	}
	if idToken.AccessTokenHash != "" {
		if err := idToken.VerifyAccessToken(token.AccessToken); err != nil {
			return Identity{}, p.fail(ErrInvalidToken, "%s", call.redact(err.Error()))
		}
	}
	if idToken.Subject == "" {
		return Identity{}, p.fail(ErrInvalidToken, "the ID token has no subject")
	}
	var claims oidcClaims
	var all map[string]any
	if err := idToken.Claims(&claims); err != nil {
		return Identity{}, p.fail(ErrInvalidToken, "reading the ID token's claims: %s", call.redact(err.Error()))
	}
	if err := idToken.Claims(&all); err != nil {
		return Identity{}, p.fail(ErrInvalidToken, "reading the ID token's claims: %s", call.redact(err.Error()))
	}
	id := Identity{
		Provider:      p.cfg.Name,
		Subject:       idToken.Subject,
		Email:         claims.Email,
		EmailVerified: claims.Email != "" && verifiedClaim(claims.EmailVerified),
		UsernameHint:  cmp.Or(claims.PreferredUsername, localPart(claims.Email)),
		Name:          claims.Name,
		MFA:           p.cfg.TrustProviderMFA && showsSecondFactor(claims.AMR, claims.ACR),
	}
	if p.cfg.GroupsClaim != "" {
		id.Groups = groupNames(all[p.cfg.GroupsClaim])
	}
	return id, p.emailRule(id)
}

// verifiedClaim reads email_verified, a boolean, or the string "true" as
// some providers (Amazon Cognito) send it; anything else is not verified.
func verifiedClaim(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}
