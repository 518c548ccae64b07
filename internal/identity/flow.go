package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// The authorization code flow (RFC 6749 4.1) with PKCE (RFC 7636): the
// routes make a state, a nonce and a verifier for each sign-in, keep them
// server-side, send the browser to AuthURL and, back at the callback, give
// the code and the same three to Exchange.

// NewVerifier makes a PKCE code verifier: 256 random bits.
func NewVerifier() string { return oauth2.GenerateVerifier() }

// NewNonce makes a random value for a nonce or a state: 256 bits, in
// URL-safe text.
func NewNonce() string { return rand.Text() + rand.Text() }

// AuthURL is where to send the browser to sign in at the provider, with
// state, the PKCE challenge of verifier and, for OpenID Connect, nonce; ""
// while the provider was never discovered (Available says why).
func (p *Provider) AuthURL(state, nonce, verifier, redirectURI string) string {
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	var endpoint oauth2.Endpoint
	if p.cfg.GitHub {
		endpoint = p.githubEndpoint()
	} else {
		found := p.discovered()
		if found == nil {
			return ""
		}
		endpoint = found.endpoint
		opts = append(opts, oidc.Nonce(nonce))
	}
	return p.oauth2Config(endpoint, redirectURI).AuthCodeURL(state, opts...)
}

// Exchange turns the code the provider sent to redirectURI into the
// identity it vouches for: for OpenID Connect a verified ID token whose
// nonce is nonce, for GitHub its API's user, verified primary email and
// memberships. The error is an *Error of one of the Err kinds. It takes at
// most the Timeout of the provider's Options.
func (p *Provider) Exchange(ctx context.Context, code, verifier, nonce, redirectURI string) (Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	call := secrets{code: code, verifier: verifier, nonce: nonce, secret: p.cfg.ClientSecret}
	if code == "" {
		return Identity{}, p.fail(ErrInvalidCode, "the callback has no code")
	}
	if p.cfg.GitHub {
		return p.exchangeGitHub(ctx, call, redirectURI)
	}
	return p.exchangeOIDC(ctx, call, redirectURI)
}

// secrets are one call's values that must reach no log: whatever a
// provider or a transport says is redacted of them before it is kept.
type secrets struct {
	code, verifier, nonce, secret string
	others                        []string // tokens, once received
}

func (s secrets) redact(text string) string {
	return redact(text, append([]string{s.code, s.verifier, s.nonce, s.secret}, s.others...)...)
}

func (p *Provider) oauth2Config(endpoint oauth2.Endpoint, redirectURI string) *oauth2.Config {
	return &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: endpoint,
		RedirectURL: redirectURI, Scopes: p.cfg.AskedScopes()}
}

// exchangeCode trades the code for the provider's tokens. A refusal of the
// code is the flow's to start again, a refusal of the client the admin's
// to fix, and anything else (no answer, a server error) makes the provider
// unavailable until it answers again.
func (p *Provider) exchangeCode(ctx context.Context, cfg *oauth2.Config, call secrets) (*oauth2.Token, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, p.client)
	token, err := cfg.Exchange(ctx, call.code, oauth2.VerifierOption(call.verifier))
	var refused *oauth2.RetrieveError
	switch {
	case err == nil:
		return token, nil
	case errors.As(err, &refused) && refused.Response != nil && refused.Response.StatusCode < http.StatusInternalServerError:
		detail := call.redact(fmt.Sprintf("the token endpoint answered %d error=%.40q error_description=%.200q",
			refused.Response.StatusCode, refused.ErrorCode, refused.ErrorDescription))
		switch refused.ErrorCode {
		case "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope",
			"incorrect_client_credentials", "redirect_uri_mismatch":
			return nil, p.fail(ErrMisconfigured, "%s", detail)
		}
		// invalid_grant, GitHub's bad_verification_code, and the rest.
		return nil, p.fail(ErrInvalidCode, "%s", detail)
	}
	if errors.As(err, &refused) && refused.Response != nil {
		// A server error's body may be a whole page: its status says enough.
		err = fmt.Errorf("the token endpoint answered %s", refused.Response.Status)
	}
	return nil, p.unreachable("exchanging the code: " + call.redact(err.Error()))
}
