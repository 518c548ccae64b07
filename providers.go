package pgsession

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/identity"
)

// The identity_provider blocks of the global option: their parsing, their
// rules, and the providers Provision makes of them. Nothing here calls a
// provider: Start does, in the background, so that a provider that cannot
// be reached neither stops Caddy nor makes `caddy validate` call out.

// providerArg reads an identity_provider block, whose options are read as
// the global option's are, and keeps where each was set for its errors.
func (a *App) providerArg(d *caddyfile.Dispenser) error {
	at := optionPositions{block: d.Token(), options: map[string]caddyfile.Token{}}
	var p identity.Config
	if !d.NextArg() {
		return d.Err("identity_provider needs a name, as in identity_provider google { ... }")
	}
	p.Name = d.Val()
	if d.NextArg() {
		return d.Errf("identity_provider takes one name, got another: %q", d.Val())
	}
	options := providerOptions(&p)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		read, ok := options[d.Val()]
		if !ok {
			return d.Errf("unknown identity_provider option %q", d.Val())
		}
		at.options[d.Val()] = d.Token()
		if err := read(d); err != nil {
			return err
		}
	}
	a.IdentityProviders = append(a.IdentityProviders, p)
	a.providerAt = append(a.providerAt, at)
	return nil
}

// providerOptions reads each option of an identity_provider block into p.
func providerOptions(p *identity.Config) map[string]readOption {
	return map[string]readOption{
		"issuer":              textArg(&p.Issuer),
		"github":              flagArg(&p.GitHub),
		"client_id":           textArg(&p.ClientID),
		"client_secret":       textArg(&p.ClientSecret),
		"label":               textArg(&p.Label),
		"scopes":              listArg(&p.Scopes),
		"allow_domains":       listArg(&p.AllowDomains),
		"allow_emails":        listArg(&p.AllowEmails),
		"allow_organizations": listArg(&p.AllowOrganizations),
		"groups_claim":        textArg(&p.GroupsClaim),
		"auto_create":         onOffArg(&p.AutoCreate),
		"trust_provider_mfa":  onOffArg(&p.TrustProviderMFA),
		"github_url":          textArg(&p.GitHubURL),
		"github_api_url":      textArg(&p.GitHubAPIURL),
	}
}

// flagArg reads an option that is a word alone, such as github.
func flagArg(dst *bool) readOption {
	return func(d *caddyfile.Dispenser) error {
		opt := d.Val()
		if d.NextArg() {
			return d.Errf("%s takes no value, got %q", opt, d.Val())
		}
		*dst = true
		return nil
	}
}

// providerErrorf is a rule an option of the i-th identity_provider breaks;
// the message names the provider, as JSON has no line to point at.
func providerErrorf(i int, p identity.Config, option, format string, args ...any) error {
	return &optionError{option: option, provider: i + 1,
		msg: fmt.Sprintf("identity_provider %s: ", p.Name) + fmt.Sprintf(format, args...)}
}

var (
	providerName = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
	// A GitHub organisation's login, and a team's slug after a slash.
	githubOrganization = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,38}(/[A-Za-z0-9._-]{1,100})?$`)
)

// providerOrigin is the origin of a provider's sign-in page, for the
// pages' form-action: the issuer's (OpenID providers' authorization
// endpoints are on it, Google's, Microsoft's, GitLab's and Keycloak's alike)
// or GitHub's web address.
func providerOrigin(p identity.Config) string {
	raw := p.Issuer
	if p.GitHub {
		raw = cmp.Or(p.GitHubURL, identity.DefaultGitHubURL)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// checkProviders applies the rules of the identity_provider blocks.
func (a *App) checkProviders() error {
	for i, p := range a.IdentityProviders {
		if !providerName.MatchString(p.Name) {
			return providerErrorf(i, p, "", "the name must be 1 to 32 of a-z, 0-9 and -, as it is part of the "+
				"callback's path ({login_path}/callback/<name>)")
		}
		if slices.ContainsFunc(a.IdentityProviders[:i], func(q identity.Config) bool { return q.Name == p.Name }) {
			return providerErrorf(i, p, "", "a second provider of the same name: each needs a name of its own")
		}
		if err := checkProvider(p); err != nil {
			var optErr *optionError
			if errors.As(err, &optErr) {
				return providerErrorf(i, p, optErr.option, "%s", optErr.msg)
			}
			return err
		}
	}
	return nil
}

// checkProvider applies the rules of one identity_provider block.
func checkProvider(p identity.Config) error {
	kind := "OpenID Connect providers (with issuer)"
	if p.GitHub {
		kind = "GitHub"
	}
	switch {
	case p.Issuer != "" && p.GitHub:
		return optionErrorf("github", "issuer and github exclude each other: GitHub has no OpenID Connect issuer")
	case p.Issuer == "" && !p.GitHub:
		return optionErrorf("", "needs issuer <url> (OpenID Connect) or github")
	case p.ClientID == "":
		return optionErrorf("", "needs client_id, the client's id at the provider")
	case p.ClientSecret == "":
		return optionErrorf("", "needs client_secret, e.g. client_secret {env.%s_CLIENT_SECRET}",
			strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")))
	}
	for _, o := range []struct {
		option string
		set    bool
		github bool // whether the option is GitHub's alone, or OpenID Connect's alone
	}{{"allow_organizations", len(p.AllowOrganizations) > 0, true}, {"github_url", p.GitHubURL != "", true},
		{"github_api_url", p.GitHubAPIURL != "", true}, {"groups_claim", p.GroupsClaim != "", false},
		{"trust_provider_mfa", p.TrustProviderMFA, false}} {
		if o.set && o.github != p.GitHub {
			why := map[string]string{"allow_organizations": "organisations are GitHub's",
				"github_url": "it is GitHub Enterprise's address", "github_api_url": "it is GitHub Enterprise's address",
				"groups_claim":       "GitHub has no ID token to read claims from",
				"trust_provider_mfa": "GitHub says nothing of how its user signed in (no amr or acr)"}[o.option]
			return optionErrorf(o.option, "%s is not for %s: %s", o.option, kind, why)
		}
	}
	for _, u := range []struct{ option, url string }{{"issuer", p.Issuer}, {"github_url", p.GitHubURL},
		{"github_api_url", p.GitHubAPIURL}} {
		if err := checkProviderURL(u.option, u.url); err != nil {
			return err
		}
	}
	if p.Label != "" && (strings.ContainsFunc(p.Label, unicode.IsControl) || len([]rune(p.Label)) > 64) {
		return optionErrorf("label", "label must be one line of at most 64 characters: %q", p.Label)
	}
	if err := checkAllowLists(p); err != nil {
		return err
	}
	if p.AutoCreate && !p.HasAllowList() {
		return optionErrorf("auto_create", "auto_create on without allow_domains, allow_emails or allow_organizations "+
			"would let anyone with an account at the provider create a user: add an allow list, or leave auto_create off "+
			"so that only identities linked to a user sign in")
	}
	return checkScopes(p)
}

// checkProviderURL accepts an absolute https URL, or http for a loopback
// host, where nothing crosses a network.
func checkProviderURL(option, raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || !strings.HasPrefix(raw, u.Scheme+"://") {
		return optionErrorf(option, "%s must be an absolute https URL, such as https://accounts.google.com, not %q", option, raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); u.Scheme == "http" && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return optionErrorf(option, "%s %s is http: sign-ins need https, and http is allowed only for a loopback host "+
			"(localhost, 127.0.0.1, ::1)", option, raw)
	}
	return nil
}

// checkAllowLists refuses entries that could never match.
func checkAllowLists(p identity.Config) error {
	for _, d := range p.AllowDomains {
		if d == "" || strings.ContainsAny(d, "@/*: ") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") {
			return optionErrorf("allow_domains", "allow_domains: %q is not a domain such as example.com "+
				"(a domain admits itself alone: list each subdomain)", d)
		}
	}
	for _, e := range p.AllowEmails {
		local, domain, ok := strings.Cut(e, "@")
		if !ok || local == "" || domain == "" || strings.ContainsAny(domain, "@ ") || strings.ContainsFunc(e, unicode.IsSpace) {
			return optionErrorf("allow_emails", "allow_emails: %q is not an email such as ada@example.com", e)
		}
	}
	for _, o := range p.AllowOrganizations {
		if !githubOrganization.MatchString(o) {
			return optionErrorf("allow_organizations", "allow_organizations: %q is not an organisation or org/team "+
				"such as example-org or example-org/ops", o)
		}
	}
	return nil
}

// checkScopes refuses scopes without what the provider's client needs.
func checkScopes(p identity.Config) error {
	if len(p.Scopes) == 0 {
		return nil
	}
	has := func(scopes ...string) bool {
		return slices.ContainsFunc(p.Scopes, func(s string) bool { return slices.Contains(scopes, s) })
	}
	switch {
	case !p.GitHub && !has("openid"):
		return optionErrorf("scopes", "scopes must include openid, or the provider sends no ID token")
	case !p.GitHub && p.UsesEmail() && !has("email"):
		return optionErrorf("scopes", "scopes must include email with allow_domains or allow_emails, or the provider sends no email")
	case p.GitHub && !has("user:email", "user"):
		return optionErrorf("scopes", "scopes must include user:email, which reads the user's verified primary email")
	case p.GitHub && len(p.AllowOrganizations) > 0 && !has("read:org", "write:org", "admin:org"):
		return optionErrorf("scopes", "scopes must include read:org with allow_organizations, which reads private memberships")
	}
	return nil
}

// providerPool shares each provider across config reloads, by its config
// with the secrets expanded: a reload keeps what discovery found rather
// than showing the provider unavailable until it is found again.
var providerPool = caddy.NewUsagePool()

// provisionProviders makes the providers, without calling them. A secret
// whose placeholder cannot be expanded is reported by Start, as
// database_url's is: `caddy validate` often runs where the variables of the
// machine that runs Caddy are not set, and it signs nobody in.
func (a *App) provisionProviders() error {
	for _, cfg := range a.IdentityProviders {
		var errs []error
		for _, s := range []struct {
			option string
			value  *string
		}{{"client_id", &cfg.ClientID}, {"client_secret", &cfg.ClientSecret}} {
			v, err := caddy.NewReplacer().ReplaceOrErr(*s.value, true, true)
			if err != nil {
				errs = append(errs, fmt.Errorf("identity_provider %s: %s: %w", cfg.Name, s.option, err))
			}
			*s.value = v
		}
		if len(errs) > 0 {
			a.unexpandedSecrets = errors.Join(append([]error{a.unexpandedSecrets}, errs...)...)
			continue
		}
		raw, err := json.Marshal(cfg)
		if err != nil {
			return err
		}
		key := fmt.Sprintf("%x", sha256.Sum256(raw))
		val, _, err := providerPool.LoadOrNew(key, func() (caddy.Destructor, error) {
			return identity.New(cfg, identity.Options{Logger: a.logger})
		})
		if err != nil {
			return fmt.Errorf("identity_provider %s: %w", cfg.Name, err)
		}
		a.providerKeys = append(a.providerKeys, key)
		a.providers = append(a.providers, val.(*identity.Provider))
	}
	if a.unexpandedSecrets != nil {
		a.logger.Warn("a secret of an identity provider cannot be expanded here; caddy run will need it", zap.Error(a.unexpandedSecrets))
	}
	return nil
}

// startProviders starts reaching each provider in the background; each
// runs until the last config using it is cleaned up.
func (a *App) startProviders() {
	for _, p := range a.providers {
		p.SetLogger(a.logger)
		p.Start(context.Background())
	}
}

// cleanupProviders releases this config's hold on its providers.
func (a *App) cleanupProviders() error {
	var errs []error
	for _, key := range a.providerKeys {
		_, err := providerPool.Delete(key)
		errs = append(errs, err)
	}
	a.providerKeys, a.providers = nil, nil
	return errors.Join(errs...)
}

// Providers are the identity providers of the config, in the order of the
// Caddyfile, for the routes.
func (a *App) Providers() []*identity.Provider { return a.providers }
