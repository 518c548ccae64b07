package identity

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The kinds of failure, which the routes tell apart with errors.Is to say
// what happened without showing the detail, which is for the log.
var (
	// ErrUnavailable: the provider cannot be reached, or answers with a
	// server error, or was not discovered yet.
	ErrUnavailable = errors.New("the identity provider is unavailable")
	// ErrDenied: the user declined at the provider (error=access_denied).
	ErrDenied = errors.New("signing in was declined at the identity provider")
	// ErrInvalidCode: the provider refused the code (used, expired or made
	// for another client or redirect): the flow is to start again.
	ErrInvalidCode = errors.New("the identity provider refused the code")
	// ErrInvalidToken: the ID token fails verification (signature, issuer,
	// audience, expiry, nonce) or is missing.
	ErrInvalidToken = errors.New("the identity provider's ID token is not valid")
	// ErrEmailNotVerified: an allow list decides by email, and the
	// provider does not say the email is verified.
	ErrEmailNotVerified = errors.New("the email is not verified at the identity provider")
	// ErrNotAllowed: no allow list admits the identity.
	ErrNotAllowed = errors.New("the identity is not allowed to sign in")
	// ErrMisconfigured: the provider refuses the client (a wrong secret, an
	// unregistered redirect URI, a scope it does not know): the admin's to fix.
	ErrMisconfigured = errors.New("the identity provider refuses this client")
)

// Error is a failure of one provider: its kind (one of the Err values
// above, which errors.Is finds) and a detail fit for the log, which never
// holds a secret, a code, a token, a nonce or a verifier.
type Error struct {
	Provider string
	Kind     error
	Detail   string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("identity provider %s: %v", e.Provider, e.Kind)
	}
	return fmt.Sprintf("identity provider %s: %v: %s", e.Provider, e.Kind, e.Detail)
}

func (e *Error) Unwrap() error { return e.Kind }

func (p *Provider) fail(kind error, format string, args ...any) error {
	return &Error{Provider: p.cfg.Name, Kind: kind, Detail: p.redact(fmt.Sprintf(format, args...))}
}

// redact takes the client's secret out of text that came from elsewhere (a
// provider's error_description, a transport's error), in case it repeats
// what it was sent; the call's own code and verifier are redacted by
// redactCall.
func (p *Provider) redact(text string) string {
	return redact(text, p.cfg.ClientSecret)
}

func redact(text string, secrets ...string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			text = strings.ReplaceAll(text, s, "[redacted]")
			text = strings.ReplaceAll(text, url.QueryEscape(s), "[redacted]")
		}
	}
	return text
}

// CallbackError is the error a provider sent back to the redirect URI in
// place of a code (RFC 6749 4.1.2.1), or nil when q has none.
func (p *Provider) CallbackError(q url.Values) error {
	code := q.Get("error")
	if code == "" && !q.Has("error") {
		return nil
	}
	// The description is the provider's text; it holds no secret of ours,
	// but is cut short, as anyone can put anything in a callback's query.
	detail := fmt.Sprintf("error=%.40q", code)
	if d := q.Get("error_description"); d != "" {
		detail += fmt.Sprintf(" error_description=%.200q", d)
	}
	switch code {
	case "access_denied", "consent_required", "login_required", "interaction_required", "account_selection_required":
		return p.fail(ErrDenied, "%s", detail)
	case "temporarily_unavailable", "server_error":
		return p.fail(ErrUnavailable, "%s", detail)
	case "unauthorized_client", "invalid_scope", "unsupported_response_type", "invalid_request", "invalid_client":
		return p.fail(ErrMisconfigured, "%s", detail)
	}
	// A code of the provider's own: the user did not get through, and the
	// detail in the log says why.
	return p.fail(ErrDenied, "%s", detail)
}
