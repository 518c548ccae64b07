package pgsession

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/pgsession/caddy-pgsession/internal/access"
	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/internal/routes"
	"github.com/pgsession/caddy-pgsession/migrations"
	"github.com/pgsession/caddy-pgsession/store"
)

// Every rule the options must follow is written here, once, and the range
// of each count and duration, with what 0 means, in ranges.go. Caddy calls
// Validate after Provision, for a Caddyfile and for JSON alike, and the
// app's Provision applies the rules first; the Caddyfile parser applies the
// same rules at the end of each block (and a range as it reads the value),
// so that a broken rule is reported with the file and line of the option at
// fault.

// optionError is a rule an option breaks.
type optionError struct {
	option   string // the option at fault, as the Caddyfile and JSON name it
	provider int    // 1 + the index of the identity_provider whose option it is; 0 for none
	msg      string
}

func (e *optionError) Error() string { return e.msg }

func optionErrorf(option, format string, args ...any) error {
	return &optionError{option: option, msg: fmt.Sprintf(format, args...)}
}

// Validate checks the handler's options.
func (h *Handler) Validate() error { return h.check() }

// check applies the handler's rules; unset options (zero values) are the
// defaults, which follow them.
func (h *Handler) check() error {
	if err := checkRanges(h.numbers(), h.zeroes); err != nil {
		return err
	}
	if h.CookieName != "" && !validCookieName(h.CookieName) {
		return optionErrorf("cookie_name", "cookie_name %q is not a valid cookie name", h.CookieName)
	}
	secure := strings.ToLower(h.Secure)
	if !oneOf(secure, "", "auto", "on", "off") {
		return optionErrorf("secure", "secure must be auto, on or off, not %q", h.Secure)
	}
	sameSite := strings.ToLower(h.SameSite)
	if !oneOf(sameSite, "", "lax", "strict", "none") {
		return optionErrorf("same_site", "same_site must be lax, strict or none, not %q", h.SameSite)
	}
	if sameSite == "none" && secure != "on" {
		return optionErrorf("same_site", "same_site none needs secure on: browsers drop SameSite=None cookies that are not Secure")
	}
	// Browsers accept a __Host- cookie only with Secure, Path=/ and no
	// Domain, and a __Secure- one only with Secure; the handler always sends
	// Path=/ and no Domain, so Secure is what must hold.
	if routes.NeedsSecure(h.CookieName) && secure == "off" {
		return optionErrorf("cookie_name", "cookie_name %s needs a Secure cookie, but secure is off: browsers would drop it", h.CookieName)
	}
	if time.Duration(h.InvitationLifetime) > store.MaxInvitationLifetime {
		return optionErrorf("invitation_lifetime", "invitation_lifetime %s is more than %d days: a link forgotten for longer is one nobody revokes",
			time.Duration(h.InvitationLifetime), store.MaxInvitationLifetime/(24*time.Hour))
	}
	// A session is written back at most once per renewal interval, so with
	// a longer one a user active all along would still reach the idle
	// timeout between two write-backs and be logged out.
	if h.IdleTimeout > 0 && h.RenewalInterval > h.IdleTimeout/2 {
		return optionErrorf("renewal_interval", "renewal_interval %s is more than half of idle_timeout %s: an active user "+
			"would be logged out between two renewals; use renewal_interval %s or less",
			time.Duration(h.RenewalInterval), time.Duration(h.IdleTimeout), time.Duration(h.IdleTimeout/2))
	}
	for _, o := range []struct{ option, v string }{{"cross_origin_protection", h.CrossOriginProtection},
		{"cache_control", h.CacheControl}} {
		if !oneOf(o.v, "", "on", "off") {
			return optionErrorf(o.option, "%s must be on or off, not %q", o.option, o.v)
		}
	}
	if !oneOf(h.SecondFactor, "", "optional", "required") {
		return optionErrorf("second_factor", "second_factor must be optional or required, not %q", h.SecondFactor)
	}
	if !oneOf(h.ErrorPages, "", "builtin", "caddy") {
		return optionErrorf("error_pages", "error_pages must be builtin or caddy, not %q", h.ErrorPages)
	}
	for _, origin := range h.TrustedOrigins {
		if err := checkOrigin(origin); err != nil {
			return optionErrorf("trusted_origins", "trusted_origins: %v", err)
		}
	}
	for _, o := range []struct{ option, path string }{{"login_path", h.LoginPath}, {"logout_path", h.LogoutPath},
		{"api_path", h.APIPath}, {"account_path", h.AccountPath}} {
		if o.path != "" && !strings.HasPrefix(o.path, "/") {
			return optionErrorf(o.option, "%s must start with /, not %q", o.option, o.path)
		}
	}
	// The JSON routes hang below api_path: at the root they would take over
	// the site's own /me, /sessions, /admin/….
	if h.APIPath != "" && strings.Trim(h.APIPath, "/") == "" {
		return optionErrorf("api_path", "api_path must be a path below the root, such as /api/auth, not %q", h.APIPath)
	}
	// The admin page is off, or a page of its own below the root, where it
	// would otherwise take over every path of the site.
	if h.AdminPath != "" && h.AdminPath != "off" && (!strings.HasPrefix(h.AdminPath, "/") || strings.Trim(h.AdminPath, "/") == "") {
		return optionErrorf("admin_path", "admin_path must be off or a path below the root, such as /admin, not %q", h.AdminPath)
	}
	// The pages link to home, so it is held to the rule of the redirect
	// after login: a path that stays on the site.
	if h.Home != "" && request.SafeRedirect(h.Home) != h.Home {
		return optionErrorf("home", "home must be a path on this site, such as / or /docs/, not %q", h.Home)
	}
	if strings.ContainsFunc(h.SiteName, unicode.IsControl) {
		return optionErrorf("site_name", "site_name must be one line of text, without control characters: %q", h.SiteName)
	}
	if err := h.checkSingleSignOn(); err != nil {
		return err
	}
	if err := h.checkPasskeyOptions(); err != nil {
		return err
	}
	// The token is checked as it will be sent: expanded once provisioned,
	// and before that only if it holds no placeholder.
	token := h.AdminToken
	if h.adminToken != nil {
		token = string(h.adminToken)
	}
	if token != "" && (h.adminToken != nil || !strings.Contains(token, "{")) && len(token) < minAdminTokenLength {
		return optionErrorf("admin_token", "admin_token must be at least %d characters (it is %d): "+
			"generate one with `openssl rand -base64 32`", minAdminTokenLength, len(token))
	}
	// Whether a second factor can be had is the app's to say (checkWith):
	// here every other rule of the rules.
	_, err := access.Compile(h.Rules, ruleOptions(true))
	return err
}

// checkPasskeyOptions applies WebAuthn's rules to passkey_rp_id and
// passkey_origins: the RP ID is a domain, not an IP address, a port or a
// URL, and every origin's host is that domain or a subdomain of it, as
// browsers require.
func (h *Handler) checkPasskeyOptions() error {
	rpID := h.PasskeyRPID
	if rpID != "" {
		if rpID != strings.ToLower(rpID) || strings.ContainsAny(rpID, ":/[]@ ") || net.ParseIP(rpID) != nil ||
			strings.HasPrefix(rpID, ".") || strings.HasSuffix(rpID, ".") || strings.Contains(rpID, "..") {
			return optionErrorf("passkey_rp_id", "passkey_rp_id must be a lowercase domain name such as example.com, "+
				"without scheme or port, and not an IP address: %q", rpID)
		}
	}
	for _, origin := range h.PasskeyOrigins {
		if err := checkOrigin(origin); err != nil {
			return optionErrorf("passkey_origins", "passkey_origins: %v", err)
		}
		u, _ := url.Parse(origin)
		host := strings.ToLower(u.Hostname())
		if rpID != "" && host != rpID && !strings.HasSuffix(host, "."+rpID) {
			return optionErrorf("passkey_origins", "passkey_origins: %s is not on passkey_rp_id %s or a subdomain of it: "+
				"browsers would refuse its passkeys", origin, rpID)
		}
	}
	return nil
}

// errNoApp is the handler's error without the app, which only the
// pg_session global option (or the JSON's apps) sets up.
var errNoApp = errors.New("the pg_session handler needs the pg_session app: add a global option block " +
	"`{ pg_session { database_url ... } }` at the top of the Caddyfile")

// checkWith applies the rules that join the handler's options to the app's.
func (h *Handler) checkWith(app *App) error {
	if h.SecondFactor == "required" && app.SecretsKey == "" {
		return optionErrorf("second_factor", "second_factor required needs secrets_key in the pg_session global option: "+
			"without it no second factor can be set up")
	}
	if h.VerifyEmail && app.SMTP == nil {
		return optionErrorf("verify_email", "verify_email on needs smtp in the pg_session global option: "+
			"without it no verification link can be sent, and no new account could sign in")
	}
	// A second factor is a TOTP code, which needs secrets_key, or a passkey,
	// which a site that names its relying party has set out to offer.
	_, err := access.Compile(h.Rules, ruleOptions(app.SecretsKey != "" || h.PasskeyRPID != "" || len(h.PasskeyOrigins) > 0))
	return err
}

// ruleOptions are what the rules are compiled against: whether users can
// give a second factor, and the store's form of a username, so that a user
// rule names the one account a sign-in would find.
func ruleOptions(secondFactor bool) access.CompileOptions {
	return access.CompileOptions{SecondFactorAvailable: secondFactor, UserKey: func(name string) (string, error) {
		u, err := store.PrepareUsername(name)
		return u.Key, err
	}}
}

// Validate checks the app's options.
func (a *App) Validate() error { return a.check() }

// check applies the app's rules; unset options are the defaults.
func (a *App) check() error {
	if a.Schema != "" {
		if err := migrations.ValidateSchema(a.Schema); err != nil {
			return optionErrorf("schema", "schema: %v", err)
		}
	}
	if err := checkRanges(a.numbers(), a.zeroes); err != nil {
		return err
	}
	if a.SecretsKey != "" && !strings.Contains(a.SecretsKey, "{") && len(a.SecretsKey) < routes.MinSecretsKeyLength {
		return optionErrorf("secrets_key", "secrets_key must be at least %d characters (caddy pg-session secrets-key prints one)",
			routes.MinSecretsKeyLength)
	}
	// A connection string with placeholders is checked once they are
	// expanded, at provisioning; the error never repeats the string, which
	// may hold a password.
	for _, o := range []struct{ option, url string }{{"database_url", a.DatabaseURL},
		{"listen_database_url", a.ListenDatabaseURL}} {
		if o.url != "" && !strings.Contains(o.url, "{") {
			if _, _, err := store.PoolConfig(o.url, ""); err != nil {
				return optionErrorf(o.option, "%s: %v", o.option, err)
			}
		}
	}
	if err := checkSMTP(a.SMTP); err != nil {
		return err
	}
	return a.checkProviders()
}

// checkOrigin accepts an origin as browsers send it in the Origin header:
// http or https, lowercase scheme, a host, and nothing after it. Anything
// else could never match a request, so it is a mistake worth reporting.
func checkOrigin(origin string) error {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.HasPrefix(origin, u.Scheme+"://") ||
		u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery ||
		strings.HasSuffix(origin, "#") {
		return fmt.Errorf("%q is not an origin like https://app.example.com", origin)
	}
	return http.NewCrossOriginProtection().AddTrustedOrigin(origin)
}

// validCookieName reports whether name is a cookie-name token (RFC 6265).
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

func oneOf(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}
