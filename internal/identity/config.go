// Package identity signs people in through an identity provider: OpenID
// Connect with discovery (Google, Microsoft Entra, GitLab, Keycloak, …) or
// GitHub, which speaks OAuth 2 without OpenID Connect. It knows no Caddy
// and no store: it turns a provider's answer into an Identity, says whether
// the provider's allow lists admit it, and says whether the provider can be
// used now. The routes keep each flow's state and start the session.
package identity

import (
	"cmp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Config is one identity_provider block of the pg_session global option,
// as JSON writes it; the rules it must follow are the root package's
// (validate), applied before New, and the secrets are expanded by then.
type Config struct {
	// Name names the provider in paths ({login_path}/callback/<name>) and
	// logs: 1 to 32 of a-z, 0-9 and -.
	Name string `json:"name"`

	// Issuer is the OpenID Connect issuer, whose discovery document is at
	// <issuer>/.well-known/openid-configuration. Either it or GitHub.
	Issuer string `json:"issuer,omitempty"`

	// GitHub makes this provider GitHub (OAuth 2 and its REST API), which
	// has no OpenID Connect. Either it or Issuer.
	GitHub bool `json:"github,omitempty"`

	// ClientID and ClientSecret are the client's registration at the
	// provider; placeholders such as {env.GOOGLE_CLIENT_SECRET} are
	// expanded at provisioning. Both are needed.
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`

	// Label is the text of the login page's button. Default: the name
	// capitalised ("Google"), or "GitHub".
	Label string `json:"label,omitempty"`

	// Scopes are asked of the provider. Default: openid email profile; for
	// GitHub read:user user:email, and read:org with AllowOrganizations.
	Scopes []string `json:"scopes,omitempty"`

	// AllowDomains admits identities whose verified email is at one of
	// these domains, exactly (a subdomain is a domain of its own).
	AllowDomains []string `json:"allow_domains,omitempty"`

	// AllowEmails admits identities with one of these verified emails.
	AllowEmails []string `json:"allow_emails,omitempty"`

	// AllowOrganizations admits GitHub users who are members of one of
	// these organisations ("org") or teams ("org/team").
	AllowOrganizations []string `json:"allow_organizations,omitempty"`

	// GroupsClaim names the ID token's claim listing the user's groups
	// (OpenID Connect only), read into Identity.Groups. Default: none.
	GroupsClaim string `json:"groups_claim,omitempty"`

	// AutoCreate lets an admitted identity that is linked to no user
	// create one; it needs an allow list. Default: off.
	AutoCreate bool `json:"auto_create,omitempty"`

	// TrustProviderMFA counts the provider's amr and acr claims, when they
	// show a second factor, as the session's second factor (OpenID Connect
	// only). Default: off.
	TrustProviderMFA bool `json:"trust_provider_mfa,omitempty"`

	// GitHubURL and GitHubAPIURL are GitHub's web and API addresses, for
	// GitHub Enterprise Server. Default: https://github.com and
	// https://api.github.com.
	GitHubURL    string `json:"github_url,omitempty"`
	GitHubAPIURL string `json:"github_api_url,omitempty"`
}

// Defaults of a Config's options.
const (
	DefaultGitHubURL    = "https://github.com"
	DefaultGitHubAPIURL = "https://api.github.com"
)

// DefaultScopes are asked of an OpenID Connect provider without scopes.
var DefaultScopes = []string{"openid", "email", "profile"}

// DefaultLabel is the button's text without a label: "GitHub", else the
// name with its first letter and each letter after a hyphen capitalised
// ("google" → "Google", "gitlab-eu" → "Gitlab Eu").
func (c Config) DefaultLabel() string {
	if c.GitHub {
		return "GitHub"
	}
	words := strings.Split(c.Name, "-")
	for i, w := range words {
		r, n := utf8.DecodeRuneInString(w)
		words[i] = string(unicode.ToUpper(r)) + w[n:]
	}
	return strings.Join(words, " ")
}

// ButtonLabel is the text of the login page's button.
func (c Config) ButtonLabel() string {
	if c.Label != "" {
		return c.Label
	}
	return c.DefaultLabel()
}

// AskedScopes are the scopes asked of the provider, the option's or the
// default.
func (c Config) AskedScopes() []string {
	switch {
	case len(c.Scopes) > 0:
		return slices.Clone(c.Scopes)
	case !c.GitHub:
		return slices.Clone(DefaultScopes)
	case len(c.AllowOrganizations) > 0:
		return []string{"read:user", "user:email", "read:org"}
	}
	return []string{"read:user", "user:email"}
}

// HasAllowList says whether any allow list is set: without one, only
// identities already linked to a user may sign in, and none is admitted.
func (c Config) HasAllowList() bool {
	return len(c.AllowDomains) > 0 || len(c.AllowEmails) > 0 || len(c.AllowOrganizations) > 0
}

// UsesEmail says whether an allow list decides by email, which then must
// be verified.
func (c Config) UsesEmail() bool {
	return len(c.AllowDomains) > 0 || len(c.AllowEmails) > 0
}

func (c Config) githubURL() string {
	return strings.TrimSuffix(cmp.Or(c.GitHubURL, DefaultGitHubURL), "/")
}

func (c Config) githubAPIURL() string {
	return strings.TrimSuffix(cmp.Or(c.GitHubAPIURL, DefaultGitHubAPIURL), "/")
}
