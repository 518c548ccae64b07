package pgsession

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/pgsession/caddy-pgsession/internal/access"
)

// The parser only turns text into values: a value that is not of its kind
// (not a number, a duration, on or off) is its error; whether a value is in
// range, and how options go together, are the rules of validate.go, which
// JSON and Provision follow too.

// parseGlobalOption sets up the pg_session app from the global option block.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		d.Next() // the option name, so the error has its file and line
		return nil, d.Err("pg_session global option given more than once")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "pg_session", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens: each option's
// text becomes its value (appOptions), and the rules of validate.go, the
// same as for JSON, are applied with the file and line of the option at
// fault. Syntax:
//
//	pg_session {
//	    database_url        <url>        # default {env.DATABASE_URL}; may go through PgBouncer
//	    listen_database_url <url>        # default database_url; a direct connection for LISTEN
//	    schema              <name>       # default pgsession
//	    cleanup_interval    <duration>   # default 1h
//	    max_connections     <n>          # default pgx's: max(4, CPUs)
//	    cache_size          <n>          # default 10000 sessions in memory; 0 turns it off
//	    offline_grace       <duration>   # default 1m; 0 turns it off
//	    history_retention   <duration>   # default 90d of sign-in history; 0 keeps none
//	    audit_retention     <duration>   # default 365d of admin actions; 0 keeps them forever
//	    secrets_key         <key>        # encrypts TOTP secrets; 32+ characters; no default (no TOTP)
//	    identity_provider   <name> {     # any number: a button each on the login page; name 1-32 of a-z 0-9 -
//	        issuer              <url>            # OpenID Connect, by discovery; or else:
//	        github                               # GitHub (OAuth 2 and its API)
//	        client_id           <id>             # e.g. {env.GOOGLE_CLIENT_ID}
//	        client_secret       <secret>         # e.g. {env.GOOGLE_CLIENT_SECRET}
//	        label               <text>           # the button's text; default the name capitalised, or GitHub
//	        scopes              <scopes...>      # default openid email profile; GitHub read:user user:email [read:org]
//	        allow_domains       <domains...>     # verified emails at these domains may come in
//	        allow_emails        <emails...>      # these verified emails may come in
//	        allow_organizations <org[/team]...>  # GitHub: members of these may come in
//	        groups_claim        <claim>          # OpenID Connect: the ID token's claim listing the groups
//	        auto_create         on|off           # default off; on needs an allow list
//	        trust_provider_mfa  on|off           # default off; on: amr/acr showing a second factor count as one
//	        github_url          <url>            # default https://github.com (GitHub Enterprise: its address)
//	        github_api_url      <url>            # default https://api.github.com
//	    }
//	    smtp {                           # the mail server for resets, address checks, invitations; no default (no mail)
//	        host     <host>              # required, e.g. smtp.example.com
//	        port     <n>                 # default 587 for starttls, 465 for tls, 25 for off
//	        username <name>              # AUTH PLAIN; default none
//	        password <password>          # e.g. {env.SMTP_PASSWORD}; needs username
//	        from     <address>           # required: site@example.com or "Example <site@example.com>"
//	        tls      starttls|tls|off    # default starttls; off with a password only to localhost
//	    }
//	}
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	at, err := parseBlock(d, a.options())
	at.providers, a.providerAt = a.providerAt, nil
	a.locateSMTP(at)
	if err != nil {
		return err
	}
	return at.locate(a.check())
}

// options reads each option of the global option into a.
func (a *App) options() map[string]readOption {
	return map[string]readOption{
		// The database and its upkeep.
		"database_url":        textArg(&a.DatabaseURL),
		"listen_database_url": textArg(&a.ListenDatabaseURL),
		"schema":              textArg(&a.Schema),
		"max_connections":     countArg(&a.MaxConnections),
		"cleanup_interval":    durationArg(&a.CleanupInterval),
		"history_retention":   optionalArg(&a.HistoryRetention, durationArg),
		"audit_retention":     optionalArg(&a.AuditRetention, durationArg),
		// Sessions in memory.
		"cache_size":    optionalArg(&a.CacheSize, countArg),
		"offline_grace": optionalArg(&a.OfflineGrace, durationArg),
		// Second factors.
		"secrets_key": textArg(&a.SecretsKey),
		// Identity providers.
		"identity_provider": a.providerArg,
		// Mail.
		"smtp": a.smtpArg,
	}
}

// parseHandlerDirective sets up the handler from the pg_session directive.
// The global option is parsed before any site, so the rules that join the
// two are applied here, where the directive's file and line are known;
// Provision applies them again, for JSON.
func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	at, err := handler.unmarshalCaddyfile(h.Dispenser)
	if err != nil {
		return nil, err
	}
	opt, configured := h.Option("pg_session").(httpcaddyfile.App)
	if !configured {
		// A Caddyfile without the global option still adapts (its JSON may
		// be joined with an app from elsewhere), but it cannot run: say so
		// now, at the directive, rather than only at provisioning.
		caddy.Log().Named("caddyfile").Warn(at.locate(optionErrorf("", "the pg_session directive needs the pg_session "+
			"global option, or caddy run fails: add a global option block `{ pg_session { database_url ... } }` "+
			"at the top of the Caddyfile")).Error())
		return handler, nil
	}
	app := new(App)
	if err := json.Unmarshal(opt.Value, app); err != nil {
		return nil, at.locate(optionErrorf("", "reading the pg_session global option: %v", err))
	}
	return handler, at.locate(handler.checkWith(app))
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens: each
// option's text becomes its value (options), and the rules of validate.go,
// the same as for JSON, are applied with the file and line of the option at
// fault. Syntax:
//
//	pg_session {
//	    public         <path_patterns...>        # served without a session
//	    cookie_name    <name>                    # default session
//	    lifetime       <duration>                # default 7d
//	    same_site      lax|strict|none           # default lax
//	    secure         auto|on|off               # default auto: when the request is HTTPS
//	    registration   on|off                    # default off
//	    login_path     <path>                    # default /login
//	    logout_path    <path>                    # default /logout
//	    api_path       <path>                    # default /api/auth
//	    login_template <file>                    # default: the built-in page
//	    idle_timeout   <duration>                # default 0: off
//	    renewal_interval <duration>              # default idle_timeout/10, at most 1m
//	    remember_lifetime <duration>|0           # default 30d; 0 turns remember me off
//	    max_sessions_per_user <n>                # default 0: unlimited
//	    account_path   <path>                    # default /account
//	    admin_path     <path>|off                # default /admin: the admin page, for admins
//	    site_name      <name>                    # e.g. "Example Docs": "Sign in to Example Docs"; default none
//	    home           <path>                    # default /: where the pages link back to the site
//	    passkey_rp_id  <domain>                  # default: the request's host; e.g. example.com for its subdomains
//	    passkey_origins <origins...>             # default: the request's origin; e.g. https://a.example.com https://b.example.com
//	    admin_token    <token>                   # e.g. {env.ADMIN_TOKEN}; at least 32 characters
//	    max_failed_logins_per_account <n>        # default 10
//	    max_failed_logins_per_ip <n>             # default 50
//	    failed_login_window <duration>           # default 15m
//	    max_registrations_per_ip <n>             # default 5 per failed_login_window
//	    trusted_origins <origins...>             # other origins allowed to POST, e.g. https://app.example.com
//	    cookie_domain  <domain>                  # e.g. example.com: one sign-in for it and its subdomains
//	    login_url      <url>                     # e.g. https://auth.example.com/login: the portal that signs browsers in
//	    cross_origin_protection on|off           # default on: refuse cross-origin writes to the site itself
//	    clear_site_data_cache on|off             # default off: logout clears cookies only
//	    cache_control  on|off                    # default on: gated responses are private, HTML no-store
//	    error_pages    builtin|caddy             # default builtin (a page for browsers, else JSON); caddy: handle_errors
//	    second_factor  optional|required         # default optional; required: users must set one up first
//	    invitation_lifetime <duration>           # default 7d: how long an invitation's link works
//	    verify_email   on|off                    # default off; on: a new account signs in once its address is verified (needs smtp)
//	    reset_link_lifetime <duration>           # default 30m: how long a "forgot password" link works (needs smtp)
//	    allow <paths...> [method <methods...>] <subjects...> [second_factor]  # access rules, in order
//	    deny  <paths...> [method <methods...>] [<subjects...>]                # first match wins
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	_, err := h.unmarshalCaddyfile(d)
	return err
}

func (h *Handler) unmarshalCaddyfile(d *caddyfile.Dispenser) (optionPositions, error) {
	at, err := parseBlock(d, h.options())
	at.rules = h.ruleAt
	if err != nil {
		return at, err
	}
	return at, at.locate(h.check())
}

// options reads each option of the directive into h.
func (h *Handler) options() map[string]readOption {
	return map[string]readOption{
		"public":                        listArg(&h.Public),
		"cookie_name":                   textArg(&h.CookieName),
		"lifetime":                      durationArg(&h.Lifetime),
		"same_site":                     textArg(&h.SameSite),
		"secure":                        textArg(&h.Secure),
		"registration":                  onOffArg(&h.Registration),
		"login_path":                    textArg(&h.LoginPath),
		"logout_path":                   textArg(&h.LogoutPath),
		"api_path":                      textArg(&h.APIPath),
		"login_template":                textArg(&h.LoginTemplate),
		"idle_timeout":                  durationArg(&h.IdleTimeout),
		"renewal_interval":              durationArg(&h.RenewalInterval),
		"remember_lifetime":             optionalArg(&h.RememberLifetime, durationArg),
		"max_sessions_per_user":         countArg(&h.MaxSessionsPerUser),
		"account_path":                  textArg(&h.AccountPath),
		"admin_path":                    textArg(&h.AdminPath),
		"site_name":                     siteNameArg(&h.SiteName),
		"home":                          textArg(&h.Home),
		"max_failed_logins_per_account": countArg(&h.MaxFailedLoginsPerAccount),
		"max_failed_logins_per_ip":      countArg(&h.MaxFailedLoginsPerIP),
		"max_registrations_per_ip":      countArg(&h.MaxRegistrationsPerIP),
		"failed_login_window":           durationArg(&h.FailedLoginWindow),
		"trusted_origins":               listArg(&h.TrustedOrigins),
		"cookie_domain":                 textArg(&h.CookieDomain),
		"login_url":                     textArg(&h.LoginURL),
		"cross_origin_protection":       onOffWordArg(&h.CrossOriginProtection),
		"clear_site_data_cache":         onOffArg(&h.ClearSiteDataCache),
		"cache_control":                 onOffWordArg(&h.CacheControl),
		"passkey_rp_id":                 textArg(&h.PasskeyRPID),
		"passkey_origins":               listArg(&h.PasskeyOrigins),
		"admin_token":                   textArg(&h.AdminToken),
		"error_pages":                   textArg(&h.ErrorPages),
		"second_factor":                 textArg(&h.SecondFactor),
		"invitation_lifetime":           durationArg(&h.InvitationLifetime),
		"verify_email":                  onOffArg(&h.VerifyEmail),
		"reset_link_lifetime":           durationArg(&h.ResetLinkLifetime),
		"allow":                         h.ruleArg,
		"deny":                          h.ruleArg,
	}
}

// ruleArg reads an allow or deny rule, in the order written, and keeps
// where it was, so that a rule the rules refuse is reported at its line.
func (h *Handler) ruleArg(d *caddyfile.Dispenser) error {
	rule, err := access.ParseRule(d)
	if err != nil {
		return err
	}
	h.Rules = append(h.Rules, rule)
	h.ruleAt = append(h.ruleAt, d.Token())
	return nil
}

// readOption reads the arguments of the option d is at.
type readOption func(d *caddyfile.Dispenser) error

// parseBlock reads a pg_session block whose options are read by options,
// and returns where each was set.
func parseBlock(d *caddyfile.Dispenser, options map[string]readOption) (optionPositions, error) {
	d.Next() // the option or directive name
	at := optionPositions{block: d.Token(), options: map[string]caddyfile.Token{}}
	if d.NextArg() {
		return at, d.ArgErr()
	}
	for d.NextBlock(0) {
		read, ok := options[d.Val()]
		if !ok {
			return at, d.Errf("unknown pg_session option %q", d.Val())
		}
		at.options[d.Val()] = d.Token()
		if err := read(d); err != nil {
			return at, err
		}
	}
	return at, nil
}

// optionPositions remembers where a block and each of its options were
// set, so that a rule broken at the block's end is reported at the option
// at fault, in the form of the dispenser's own errors.
type optionPositions struct {
	block   caddyfile.Token
	options map[string]caddyfile.Token
	rules   []caddyfile.Token // where each access rule was written, in order
	// providers are where each identity_provider block and its options were set, in order.
	providers []optionPositions
}

// locate gives err, from the rules, the file and line of its option, or of
// the block when the option was not set in it.
func (at optionPositions) locate(err error) error {
	var optErr *optionError
	var ruleErr *access.RuleError
	var token caddyfile.Token
	switch {
	case errors.As(err, &ruleErr) && ruleErr.Index < len(at.rules):
		token = at.rules[ruleErr.Index]
	case errors.As(err, &optErr) && optErr.provider > 0 && optErr.provider <= len(at.providers):
		return at.providers[optErr.provider-1].locate(&optionError{option: optErr.option, msg: optErr.msg})
	case errors.As(err, &optErr):
		var ok bool
		if token, ok = at.options[optErr.option]; !ok {
			token = at.block
		}
	default:
		return err
	}
	d := caddyfile.NewDispenser([]caddyfile.Token{token})
	d.Next()
	return d.WrapErr(err)
}

// singleArg reads exactly one argument of the current option into dst.
func singleArg(d *caddyfile.Dispenser, dst *string) error {
	opt := d.Val()
	if !d.NextArg() {
		return d.Errf("%s needs a value", opt)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("%s takes one value, got another: %q", opt, d.Val())
	}
	return nil
}

func textArg(dst *string) readOption {
	return func(d *caddyfile.Dispenser) error { return singleArg(d, dst) }
}

// listArg appends the arguments, one or more, to dst: the option may be repeated.
func listArg(dst *[]string) readOption {
	return func(d *caddyfile.Dispenser) error {
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		*dst = append(*dst, args...)
		return nil
	}
}

// siteNameArg is textArg with a hint for the usual mistake, a name with spaces
// left unquoted.
func siteNameArg(dst *string) readOption {
	return func(d *caddyfile.Dispenser) error {
		args := d.RemainingArgs()
		if len(args) != 1 {
			return d.Errf(`site_name takes one value: quote a name with spaces, as in site_name "Example Docs"`)
		}
		*dst = args[0]
		return nil
	}
}

// countArg reads a whole number.
func countArg(dst *int) readOption { return numberArg(dst, strconv.Atoi) }

// durationArg reads a duration, such as 90s or 7d.
func durationArg(dst *caddy.Duration) readOption {
	return numberArg(dst, func(s string) (caddy.Duration, error) {
		dur, err := caddy.ParseDuration(s)
		return caddy.Duration(dur), err
	})
}

// numberArg reads a count or a duration with parse; its range is
// rangeRules', checked here too so that the error points at the option even
// when the block has others wrong.
func numberArg[T ~int | ~int64](dst *T, parse func(string) (T, error)) readOption {
	return func(d *caddyfile.Dispenser) error {
		opt, rule := d.Val(), rangeRules[d.Val()]
		var s string
		if err := singleArg(d, &s); err != nil {
			return err
		}
		n, err := parse(s)
		if err != nil {
			return d.WrapErr(rule.notOfItsKind(opt, s))
		}
		*dst = n
		if err := rule.check(opt, int64(n)); err != nil {
			return d.WrapErr(err)
		}
		return nil
	}
}

// optionalArg reads an option whose field is a pointer, for one where 0 is a
// setting of its own rather than the default.
func optionalArg[T any](dst **T, read func(*T) readOption) readOption {
	return func(d *caddyfile.Dispenser) error {
		v := new(T)
		*dst = v
		return read(v)(d)
	}
}

func onOffArg(dst *bool) readOption {
	return func(d *caddyfile.Dispenser) error {
		opt := d.Val()
		var s string
		if err := singleArg(d, &s); err != nil {
			return err
		}
		if s != "on" && s != "off" {
			return d.Errf("%s must be on or off, not %q", opt, s)
		}
		*dst = s == "on"
		return nil
	}
}

// onOffWordArg is onOffArg for an option JSON spells "on" or "off", because its
// default is on.
func onOffWordArg(dst *string) readOption {
	return func(d *caddyfile.Dispenser) error {
		var on bool
		if err := onOffArg(&on)(d); err != nil {
			return err
		}
		*dst = map[bool]string{true: "on", false: "off"}[on]
		return nil
	}
}
