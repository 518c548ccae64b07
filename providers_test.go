package pgsession

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/identity"
)

// googleLike is a valid OpenID provider's block, which each case of the
// rules changes in one way.
func googleLike() identity.Config {
	return identity.Config{Name: "google", Issuer: "https://accounts.google.com", ClientID: "id",
		ClientSecret: "s3cret-of-the-client"}
}

func githubLike() identity.Config {
	return identity.Config{Name: "github", GitHub: true, ClientID: "id", ClientSecret: "s3cret-of-the-client"}
}

// Each rule of identity_provider refuses in JSON as in the Caddyfile (the
// golden *_error files show the Caddyfile's lines), and no message repeats
// the client secret.
func TestIdentityProviderRules(t *testing.T) {
	with := func(c identity.Config, change func(*identity.Config)) []identity.Config {
		change(&c)
		return []identity.Config{c}
	}
	for _, tc := range []struct {
		name      string
		providers []identity.Config
		wantErr   string // "" for valid
	}{
		{"google", with(googleLike(), func(*identity.Config) {}), ""},
		{"github", with(githubLike(), func(*identity.Config) {}), ""},
		{"loopback http issuer", with(googleLike(), func(c *identity.Config) { c.Issuer = "http://127.0.0.1:9000/realms/x" }), ""},
		{"localhost http issuer", with(googleLike(), func(c *identity.Config) { c.Issuer = "http://localhost:9000" }), ""},
		{"ipv6 loopback", with(githubLike(), func(c *identity.Config) { c.GitHubAPIURL = "http://[::1]:8080/api/v3" }), ""},
		{"auto_create with a domain", with(googleLike(), func(c *identity.Config) {
			c.AutoCreate, c.AllowDomains = true, []string{"example.com"}
		}), ""},
		{"github teams", with(githubLike(), func(c *identity.Config) {
			c.AllowOrganizations, c.AutoCreate = []string{"example-org", "Example-Org/ops.team_1"}, true
		}), ""},
		{"placeholder secret", with(googleLike(), func(c *identity.Config) { c.ClientSecret = "{env.GOOGLE_CLIENT_SECRET}" }), ""},

		{"no name", with(googleLike(), func(c *identity.Config) { c.Name = "" }), "the name must be 1 to 32 of a-z, 0-9 and -"},
		{"long name", with(googleLike(), func(c *identity.Config) { c.Name = "a23456789012345678901234567890123" }), "1 to 32"},
		{"slash in name", with(googleLike(), func(c *identity.Config) { c.Name = "a/b" }), "1 to 32"},
		{"duplicate", []identity.Config{googleLike(), githubLike(), googleLike()},
			"identity_provider google: a second provider of the same name"},
		{"both", with(googleLike(), func(c *identity.Config) { c.GitHub = true }), "issuer and github exclude each other"},
		{"neither", with(googleLike(), func(c *identity.Config) { c.Issuer = "" }), "needs issuer <url> (OpenID Connect) or github"},
		{"no client_id", with(googleLike(), func(c *identity.Config) { c.ClientID = "" }), "needs client_id"},
		{"no client_secret", with(githubLike(), func(c *identity.Config) { c.ClientSecret = "" }),
			"needs client_secret, e.g. client_secret {env.GITHUB_CLIENT_SECRET}"},
		{"http issuer", with(googleLike(), func(c *identity.Config) { c.Issuer = "http://accounts.google.com" }),
			"http is allowed only for a loopback host"},
		{"relative issuer", with(googleLike(), func(c *identity.Config) { c.Issuer = "accounts.google.com" }),
			"issuer must be an absolute https URL"},
		{"issuer with query", with(googleLike(), func(c *identity.Config) { c.Issuer = "https://a.example/?x=1" }), "absolute https URL"},
		{"issuer with user", with(googleLike(), func(c *identity.Config) { c.Issuer = "https://u:p@a.example/" }), "absolute https URL"},
		{"ftp issuer", with(googleLike(), func(c *identity.Config) { c.Issuer = "ftp://a.example" }), "absolute https URL"},
		{"http github_url", with(githubLike(), func(c *identity.Config) { c.GitHubURL = "http://git.example.com" }),
			"github_url http://git.example.com is http"},
		{"orgs on oidc", with(googleLike(), func(c *identity.Config) { c.AllowOrganizations = []string{"x"} }),
			"allow_organizations is not for OpenID Connect providers"},
		{"github_url on oidc", with(googleLike(), func(c *identity.Config) { c.GitHubURL = "https://git.example.com" }),
			"github_url is not for OpenID Connect"},
		{"github_api_url on oidc", with(googleLike(), func(c *identity.Config) { c.GitHubAPIURL = "https://git.example.com" }),
			"github_api_url is not for OpenID Connect"},
		{"groups on github", with(githubLike(), func(c *identity.Config) { c.GroupsClaim = "groups" }), "groups_claim is not for GitHub"},
		{"mfa on github", with(githubLike(), func(c *identity.Config) { c.TrustProviderMFA = true }),
			"trust_provider_mfa is not for GitHub: GitHub says nothing of how its user signed in"},
		{"auto_create alone", with(googleLike(), func(c *identity.Config) { c.AutoCreate = true }),
			"auto_create on without allow_domains, allow_emails or allow_organizations would let anyone"},
		{"auto_create with groups only", with(googleLike(), func(c *identity.Config) { c.AutoCreate, c.GroupsClaim = true, "groups" }),
			"auto_create on without"},
		{"domain with @", with(googleLike(), func(c *identity.Config) { c.AllowDomains = []string{"@example.com"} }),
			`allow_domains: "@example.com" is not a domain`},
		{"wildcard domain", with(googleLike(), func(c *identity.Config) { c.AllowDomains = []string{"*.example.com"} }), "list each subdomain"},
		{"bad email", with(googleLike(), func(c *identity.Config) { c.AllowEmails = []string{"ada"} }), `allow_emails: "ada" is not an email`},
		{"bad org", with(githubLike(), func(c *identity.Config) { c.AllowOrganizations = []string{"-org"} }), `allow_organizations: "-org"`},
		{"bad team", with(githubLike(), func(c *identity.Config) { c.AllowOrganizations = []string{"org/"} }), `allow_organizations: "org/"`},
		{"scopes without openid", with(googleLike(), func(c *identity.Config) { c.Scopes = []string{"email"} }), "scopes must include openid"},
		{"scopes without email", with(googleLike(), func(c *identity.Config) {
			c.Scopes, c.AllowEmails = []string{"openid"}, []string{"ada@example.com"}
		}), "scopes must include email"},
		{"github scopes without email", with(githubLike(), func(c *identity.Config) { c.Scopes = []string{"read:user"} }),
			"scopes must include user:email"},
		{"github scopes without read:org", with(githubLike(), func(c *identity.Config) {
			c.Scopes, c.AllowOrganizations = []string{"user:email"}, []string{"example-org"}
		}), "scopes must include read:org"},
		{"label on two lines", with(googleLike(), func(c *identity.Config) { c.Label = "Google\nWorkspace" }), "label must be one line"},
	} {
		err := (&App{IdentityProviders: tc.providers}).Validate()
		if tc.wantErr == "" {
			assert.NoError(t, err, tc.name)
			continue
		}
		if assert.Error(t, err, tc.name) {
			assert.Contains(t, err.Error(), tc.wantErr, tc.name)
			assert.Contains(t, err.Error(), "identity_provider ", "%s: the error names the provider", tc.name)
			assert.NotContains(t, err.Error(), "s3cret-of-the-client", tc.name)
		}
	}
}

// An error in an identity_provider block points at the option at fault,
// or at the block's line when an option is missing, in the block it is in.
func TestIdentityProviderErrorsPointAtTheirLine(t *testing.T) {
	const block = "pg_session {\n" +
		"identity_provider google {\n" + // line 2
		"issuer https://accounts.google.com\n" +
		"client_id a\n" +
		"client_secret b\n" +
		"}\n" +
		"identity_provider github {\n" + // line 7
		"github\n" +
		"client_id c\n" +
		"client_secret d\n" +
		"%s\n" + // line 11
		"}\n}"
	for extra, want := range map[string]string{
		"groups_claim groups":         "identity_provider github: groups_claim is not for GitHub: GitHub has no ID token to read claims from, at Testfile:11",
		"auto_create on":              "identity_provider github: auto_create on without allow_domains, allow_emails or allow_organizations",
		"issuer https://github.com":   "identity_provider github: issuer and github exclude each other: GitHub has no OpenID Connect issuer, at Testfile:8",
		"allow_emails a":              `identity_provider github: allow_emails: "a" is not an email such as ada@example.com, at Testfile:11`,
		"github_url http://github.io": "identity_provider github: github_url http://github.io is http",
		"github on":                   `github takes no value, got "on", at Testfile:11`,
		"trust_provider_mfa yes":      `trust_provider_mfa must be on or off, not "yes", at Testfile:11`,
		"client_id":                   "client_id needs a value, at Testfile:11",
		"nonsense 1":                  `unknown identity_provider option "nonsense", at Testfile:11`,
	} {
		err := new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser(fmt.Sprintf(block, extra)))
		if assert.Error(t, err, extra) {
			assert.Contains(t, err.Error(), want, extra)
			assert.Regexp(t, `at Testfile:(8|11)$`, err.Error(), extra)
		}
	}
	missing := "pg_session {\nidentity_provider google {\nissuer https://accounts.google.com\nclient_id a\n}\n}"
	err := new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser(missing))
	require.Error(t, err)
	assert.Equal(t, "identity_provider google: needs client_secret, e.g. client_secret {env.GOOGLE_CLIENT_SECRET}, at Testfile:2", err.Error())
	for text, want := range map[string]string{
		"pg_session {\nidentity_provider {\n}\n}":           "identity_provider needs a name, as in identity_provider google { ... }, at Testfile:2",
		"pg_session {\nidentity_provider a b {\n}\n}":       `identity_provider takes one name, got another: "b", at Testfile:2`,
		"pg_session {\nidentity_provider google\n}":         "identity_provider google: needs issuer <url> (OpenID Connect) or github, at Testfile:2",
		"pg_session {\nidentity_provider Google {\n}\n}":    "identity_provider Google: the name must be 1 to 32 of a-z, 0-9 and -",
		"pg_session {\nidentity_provider google {\n}\n}":    "identity_provider google: needs issuer <url> (OpenID Connect) or github, at Testfile:2",
		"pg_session {\nidentity_provider x {\ngithub\n}\n}": "identity_provider x: needs client_id, the client's id at the provider, at Testfile:2",
	} {
		err := new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser(text))
		if assert.Error(t, err, text) {
			assert.Contains(t, err.Error(), want, text)
		}
	}
}

// Provisioning, as caddy validate does, makes no call to any provider:
// discovery waits for Start. A provider provisioned twice with the same
// config, as over a reload, is one provider, so what it found is kept.
func TestIdentityProvidersProvisionWithoutCallingThem(t *testing.T) {
	var calls atomic.Int32
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		http.NotFound(w, nil)
	}))
	defer provider.Close()
	config := func(secret string) []identity.Config {
		return []identity.Config{{Name: "local", Issuer: provider.URL, ClientID: "id", ClientSecret: secret},
			{Name: "github", GitHub: true, ClientID: "id", ClientSecret: secret, GitHubAPIURL: provider.URL}}
	}
	provision := func(app *App) *App {
		t.Helper()
		// Each config has its own context, as each load of Caddy's has.
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		require.NoError(t, app.Provision(ctx))
		return app
	}
	first := provision(&App{DatabaseURL: "postgres://127.0.0.1:1/providers", IdentityProviders: config("secret-one")})
	defer first.Cleanup()
	require.NoError(t, first.Validate())
	require.Len(t, first.Providers(), 2)
	assert.Equal(t, "local", first.Providers()[0].Name())
	assert.Equal(t, "GitHub", first.Providers()[1].Label())
	assert.Empty(t, first.Providers()[0].Config().ClientSecret, "the config the routes see holds no secret")
	ok, why := first.Providers()[0].Available()
	assert.False(t, ok, "an OpenID provider is unavailable until discovered")
	assert.Equal(t, "not reached yet", why)

	again := provision(&App{DatabaseURL: "postgres://127.0.0.1:1/providers", IdentityProviders: config("secret-one")})
	assert.Same(t, first.Providers()[0], again.Providers()[0], "a reload keeps the provider")
	require.NoError(t, again.Cleanup())
	other := provision(&App{DatabaseURL: "postgres://127.0.0.1:1/providers", IdentityProviders: config("secret-two")})
	assert.NotSame(t, first.Providers()[0], other.Providers()[0], "a new secret is a new provider")
	require.NoError(t, other.Cleanup())
	assert.Zero(t, calls.Load(), "provisioning called a provider")
}

// A client secret whose placeholder is unset does not stop caddy validate,
// which provisions only, but stops the start, naming the option and never
// a value.
func TestIdentityProviderUnsetSecretFailsTheStart(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	app := &App{DatabaseURL: "postgres://127.0.0.1:1/providers", IdentityProviders: []identity.Config{
		{Name: "google", Issuer: "https://accounts.google.com", ClientID: "id", ClientSecret: "{env.PGSESSION_TEST_UNSET_SECRET}"}}}
	require.NoError(t, app.Provision(ctx))
	defer app.Cleanup()
	require.NoError(t, app.Validate())
	assert.Empty(t, app.Providers())
	err := app.Start()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "identity_provider google: client_secret:")
	assert.Contains(t, err.Error(), "PGSESSION_TEST_UNSET_SECRET")
}
