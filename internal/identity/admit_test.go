package identity

import (
	"cmp"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newProvider(t *testing.T, cfg Config) *Provider {
	t.Helper()
	cfg.Name = cmp.Or(cfg.Name, "test")
	cfg.ClientID, cfg.ClientSecret = "client", "s3cret-of-the-client"
	if !cfg.GitHub && cfg.Issuer == "" {
		cfg.Issuer = "https://issuer.example"
	}
	p, err := New(cfg, Options{})
	require.NoError(t, err)
	t.Cleanup(p.Stop)
	return p
}

// Each allow list that is set must be passed, either email list admits,
// an email decides only when verified, and without any list no one is
// admitted (only identities linked to a user sign in).
func TestAdmits(t *testing.T) {
	verified := func(email string) Identity {
		return Identity{Provider: "test", Subject: "1", Email: email, EmailVerified: true}
	}
	member := func(email string, orgs ...string) Identity {
		id := verified(email)
		id.Organizations = orgs
		return id
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		id   Identity
		ok   bool
		why  string
	}{
		{"no list", Config{}, verified("ada@example.com"), false, "no allow list"},
		{"domain", Config{AllowDomains: []string{"example.com"}}, verified("ada@example.com"), true, "domain is in allow_domains"},
		{"domain any case", Config{AllowDomains: []string{"Example.COM"}}, verified("Ada@EXAMPLE.com"), true, ""},
		{"subdomain is not the domain", Config{AllowDomains: []string{"example.com"}}, verified("ada@eng.example.com"), false,
			"its domain eng.example.com is in"},
		{"suffix is not the domain", Config{AllowDomains: []string{"example.com"}}, verified("ada@evil-example.com"), false, ""},
		{"last @ decides", Config{AllowDomains: []string{"example.com"}}, verified("ada@example.com@evil.test"), false, ""},
		{"email", Config{AllowEmails: []string{"bob@gmail.com"}}, verified("BOB@gmail.com"), true, "allow_emails"},
		{"email or domain", Config{AllowEmails: []string{"bob@gmail.com"}, AllowDomains: []string{"example.com"}},
			verified("bob@gmail.com"), true, ""},
		{"another email", Config{AllowEmails: []string{"bob@gmail.com"}}, verified("eve@gmail.com"), false, ""},
		{"unverified", Config{AllowDomains: []string{"example.com"}},
			Identity{Provider: "test", Email: "ada@example.com"}, false, "not say the email is verified"},
		{"no email", Config{AllowDomains: []string{"example.com"}}, Identity{Provider: "test", EmailVerified: true}, false, ""},
		{"org", Config{GitHub: true, AllowOrganizations: []string{"example-org"}}, member("", "example-org"), true, "a member of example-org"},
		{"not a member", Config{GitHub: true, AllowOrganizations: []string{"example-org"}}, member("ada@example.com"), false,
			"not a member of any of allow_organizations"},
		{"member of another", Config{GitHub: true, AllowOrganizations: []string{"example-org"}}, member("", "other-org"), false, ""},
		{"team", Config{GitHub: true, AllowOrganizations: []string{"other", "example-org/ops"}}, member("", "example-org/ops"), true, ""},
		{"org and domain", Config{GitHub: true, AllowOrganizations: []string{"example-org"}, AllowDomains: []string{"example.com"}},
			member("ada@example.com", "example-org"), true, "domain is in allow_domains; a member of example-org"},
		{"org without the domain", Config{GitHub: true, AllowOrganizations: []string{"example-org"}, AllowDomains: []string{"example.com"}},
			member("ada@gmail.com", "example-org"), false, ""},
		{"domain without the org", Config{GitHub: true, AllowOrganizations: []string{"example-org"}, AllowDomains: []string{"example.com"}},
			member("ada@example.com"), false, ""},
		{"another provider's", Config{AllowDomains: []string{"example.com"}},
			Identity{Provider: "other", Email: "ada@example.com", EmailVerified: true}, false, "other's, not test's"},
	} {
		ok, why := newProvider(t, tc.cfg).Admits(tc.id)
		assert.Equal(t, tc.ok, ok, "%s: %s", tc.name, why)
		assert.Contains(t, why, tc.why, tc.name)
	}
}

// A second factor shows as mfa, as methods of two kinds, or as an acr that
// means it; one kind twice, or a provider's own acr, is not one.
func TestShowsSecondFactor(t *testing.T) {
	for _, tc := range []struct {
		amr  []string
		acr  string
		want bool
	}{
		{nil, "", false},
		{[]string{"pwd"}, "", false},
		{[]string{"pwd", "mfa"}, "", true},
		{[]string{"pwd", "otp"}, "", true},
		{[]string{"hwk", "fpt"}, "", true},
		{[]string{"pwd", "pin", "kba"}, "", false},
		{[]string{"otp", "sms"}, "", false},
		{[]string{"pwd", "rba"}, "", false},
		{[]string{"pwd"}, "http://schemas.openid.net/pape/policies/2007/06/multi-factor", true},
		{nil, "phrh", true},
		{[]string{"pwd"}, "2", false},
		{[]string{"pwd"}, "urn:mace:incommon:iap:silver", false},
	} {
		assert.Equal(t, tc.want, showsSecondFactor(tc.amr, tc.acr), "amr %v acr %q", tc.amr, tc.acr)
	}
}

func TestGroupNames(t *testing.T) {
	assert.Equal(t, []string{"staff", "admins", "parent/child"},
		groupNames([]any{"Staff", "/admins", " staff ", 7, "", "/Parent/Child", nil}))
	assert.Equal(t, []string{"ops"}, groupNames("ops"))
	assert.Nil(t, groupNames(map[string]any{"x": "y"}))
	assert.Nil(t, groupNames(nil))
}

func TestLabelsAndScopes(t *testing.T) {
	assert.Equal(t, "Google", Config{Name: "google"}.ButtonLabel())
	assert.Equal(t, "Gitlab Eu", Config{Name: "gitlab-eu"}.ButtonLabel())
	assert.Equal(t, "GitHub", Config{Name: "ghe", GitHub: true}.ButtonLabel())
	assert.Equal(t, "Staff SSO", Config{Name: "keycloak", Label: "Staff SSO"}.ButtonLabel())
	assert.Equal(t, []string{"openid", "email", "profile"}, Config{}.AskedScopes())
	assert.Equal(t, []string{"read:user", "user:email"}, Config{GitHub: true}.AskedScopes())
	assert.Equal(t, []string{"read:user", "user:email", "read:org"}, Config{GitHub: true, AllowOrganizations: []string{"x"}}.AskedScopes())
	assert.Equal(t, []string{"openid"}, Config{Scopes: []string{"openid"}}.AskedScopes())
}

// The provider's error answers at the callback are told apart, and the
// detail is cut short, as anyone can put anything in a callback's query.
func TestCallbackError(t *testing.T) {
	p := newProvider(t, Config{})
	assert.NoError(t, p.CallbackError(url.Values{"code": {"abc"}}))
	for code, kind := range map[string]error{
		"access_denied": ErrDenied, "login_required": ErrDenied, "temporarily_unavailable": ErrUnavailable,
		"server_error": ErrUnavailable, "invalid_scope": ErrMisconfigured, "unauthorized_client": ErrMisconfigured,
		"something_else": ErrDenied, "": ErrDenied,
	} {
		err := p.CallbackError(url.Values{"error": {code}, "error_description": {strings.Repeat("x", 1000)}})
		assert.ErrorIs(t, err, kind, code)
		var e *Error
		require.True(t, errors.As(err, &e))
		assert.Equal(t, "test", e.Provider)
		assert.Less(t, len(e.Detail), 300, code)
	}
}

func TestRedact(t *testing.T) {
	call := secrets{code: "the-code-1234", verifier: "the-verifier", nonce: "the-nonce", secret: "s3cret/+x"}
	got := call.redact(`invalid_grant: code the-code-1234 with the-verifier; client_secret=s3cret%2F%2Bx; nonce the-nonce`)
	for _, s := range []string{"the-code-1234", "the-verifier", "the-nonce", "s3cret"} {
		assert.NotContains(t, got, s)
	}
	assert.Contains(t, got, "invalid_grant")
}

// Without Start a provider calls nothing, an OpenID one says it is not
// reached yet, and Stop returns.
func TestProviderBeforeStart(t *testing.T) {
	p := newProvider(t, Config{})
	ok, why := p.Available()
	assert.False(t, ok)
	assert.Equal(t, "not reached yet", why)
	assert.Empty(t, p.AuthURL("state", "nonce", NewVerifier(), "https://site.example/login/callback/test"))
	_, err := p.Exchange(t.Context(), "code", NewVerifier(), "nonce", "https://site.example/login/callback/test")
	assert.ErrorIs(t, err, ErrUnavailable)
	p.Stop()
	p.Stop()

	gh := newProvider(t, Config{GitHub: true})
	ok, _ = gh.Available()
	assert.True(t, ok, "GitHub needs no discovery")
	u, err := url.Parse(gh.AuthURL("the-state", "nonce", NewVerifier(), "https://site.example/login/callback/test"))
	require.NoError(t, err)
	assert.Equal(t, "https://github.com/login/oauth/authorize", u.Scheme+"://"+u.Host+u.Path)
	q := u.Query()
	assert.Equal(t, "the-state", q.Get("state"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.Equal(t, "read:user user:email", q.Get("scope"))
	assert.False(t, q.Has("nonce"), "GitHub has no ID token to carry a nonce")

	for _, cfg := range []Config{{Name: ""}, {Name: "x", Issuer: "https://a.example", GitHub: true, ClientID: "a", ClientSecret: "b"},
		{Name: "x", Issuer: "https://a.example", ClientID: "a"}} {
		_, err := New(cfg, Options{})
		assert.Error(t, err, "%+v", cfg)
	}
	assert.Len(t, NewNonce(), 52)
	assert.NotEqual(t, NewNonce(), NewNonce())
}
