package pgsession

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

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

// UnmarshalCaddyfile sets up the app from Caddyfile tokens: it parses, and
// the block's rules (see check) are applied at its end. Syntax:
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
//	    secrets_key         <key>        # encrypts TOTP secrets; 32+ characters; no default (no TOTP)
//	}
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	at := optionPositions{}
	for d.NextBlock(0) {
		at.record(d)
		switch d.Val() {
		case "database_url":
			if err := singleArg(d, &a.DatabaseURL); err != nil {
				return err
			}
		case "listen_database_url":
			if err := singleArg(d, &a.ListenDatabaseURL); err != nil {
				return err
			}
		case "schema":
			if err := singleArg(d, &a.Schema); err != nil {
				return err
			}
		case "secrets_key":
			if err := singleArg(d, &a.SecretsKey); err != nil {
				return err
			}
		case "cache_size":
			var s string
			if err := singleArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return d.Errf("cache_size: %q is not a whole number (0 turns the cache off)", s)
			}
			a.CacheSize = &n
		case "offline_grace":
			var s string
			if err := singleArg(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur < 0 {
				return d.Errf("offline_grace: %q is not a duration (examples: 30s, 1m; 0 turns it off)", s)
			}
			cd := caddy.Duration(dur)
			a.OfflineGrace = &cd
		case "cleanup_interval":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			a.CleanupInterval = dur
		case "max_connections":
			var s string
			if err := singleArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return d.Errf("max_connections: %q is not a positive whole number", s)
			}
			a.MaxConnections = n
		case "history_retention":
			// A negative duration parses; check refuses it, for JSON as well.
			var s string
			if err := singleArg(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil {
				return d.Errf("history_retention: %q is not a duration (examples: 30d, 2160h; 0 keeps no history)", s)
			}
			cd := caddy.Duration(dur)
			a.HistoryRetention = &cd
		default:
			return d.Errf("unknown pg_session option %q", d.Val())
		}
	}
	return at.locate(d, a.check())
}

// parseHandlerDirective sets up the handler from the pg_session directive.
func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens: it parses,
// and the block's rules (see check) are applied at its end. Syntax:
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
//	    idle_timeout   <duration>                # default off
//	    renewal_interval <duration>              # default idle_timeout/10, at most 1m
//	    remember_lifetime <duration>|0           # default 30d; 0 turns remember me off
//	    max_sessions_per_user <n>                # default 0: unlimited
//	    account_path   <path>                    # default /account
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
//	    cross_origin_protection on|off           # default on: refuse cross-origin writes to the site itself
//	    clear_site_data_cache on|off             # default off: logout clears cookies only
//	    cache_control  on|off                    # default on: gated responses are private, HTML no-store
//	    error_pages    builtin|caddy             # default builtin (a page for browsers, else JSON); caddy: handle_errors
//	    second_factor  optional|required         # default optional; required: users must set one up first
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	// Where options were set, for an error found only at the block's end.
	at := optionPositions{}
	for d.NextBlock(0) {
		at.record(d)
		switch d.Val() {
		case "public":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.Public = append(h.Public, args...)
		case "cookie_name":
			if err := singleArg(d, &h.CookieName); err != nil {
				return err
			}
		case "lifetime":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.Lifetime = dur
		case "same_site":
			if err := singleArg(d, &h.SameSite); err != nil {
				return err
			}
		case "secure":
			if err := singleArg(d, &h.Secure); err != nil {
				return err
			}
		case "registration":
			on, err := onOffArg(d)
			if err != nil {
				return err
			}
			h.Registration = on
		case "login_path":
			if err := pathArg(d, &h.LoginPath); err != nil {
				return err
			}
		case "logout_path":
			if err := pathArg(d, &h.LogoutPath); err != nil {
				return err
			}
		case "api_path":
			if err := pathArg(d, &h.APIPath); err != nil {
				return err
			}
		case "login_template":
			if err := singleArg(d, &h.LoginTemplate); err != nil {
				return err
			}
		case "idle_timeout":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.IdleTimeout = dur
		case "renewal_interval":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.RenewalInterval = dur
		case "remember_lifetime":
			var s string
			if err := singleArg(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur < 0 {
				return d.Errf("remember_lifetime: %q is not a duration (examples: 12h, 30d; 0 turns remember me off)", s)
			}
			cd := caddy.Duration(dur)
			h.RememberLifetime = &cd
		case "max_sessions_per_user":
			var s string
			if err := singleArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return d.Errf("max_sessions_per_user: %q is not a whole number (0 means unlimited)", s)
			}
			h.MaxSessionsPerUser = n
		case "account_path":
			if err := pathArg(d, &h.AccountPath); err != nil {
				return err
			}
		case "site_name":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return d.Errf(`site_name takes one value: quote a name with spaces, as in site_name "Example Docs"`)
			}
			h.SiteName = args[0]
		case "home":
			// Its rule (a path on this site) is check's, applied at the block's end.
			if err := singleArg(d, &h.Home); err != nil {
				return err
			}
		case "max_failed_logins_per_account", "max_failed_logins_per_ip", "max_registrations_per_ip":
			opt := d.Val()
			var s string
			if err := singleArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return d.Errf("%s: %q is not a positive whole number", opt, s)
			}
			switch opt {
			case "max_failed_logins_per_account":
				h.MaxFailedLoginsPerAccount = n
			case "max_failed_logins_per_ip":
				h.MaxFailedLoginsPerIP = n
			default:
				h.MaxRegistrationsPerIP = n
			}
		case "failed_login_window":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.FailedLoginWindow = dur
		case "trusted_origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.TrustedOrigins = append(h.TrustedOrigins, args...)
		case "cross_origin_protection":
			on, err := onOffArg(d)
			if err != nil {
				return err
			}
			h.CrossOriginProtection = "off"
			if on {
				h.CrossOriginProtection = "on"
			}
		case "clear_site_data_cache":
			on, err := onOffArg(d)
			if err != nil {
				return err
			}
			h.ClearSiteDataCache = on
		case "cache_control":
			on, err := onOffArg(d)
			if err != nil {
				return err
			}
			h.CacheControl = "off"
			if on {
				h.CacheControl = "on"
			}
		case "passkey_rp_id":
			if err := singleArg(d, &h.PasskeyRPID); err != nil {
				return err
			}
		case "passkey_origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.PasskeyOrigins = append(h.PasskeyOrigins, args...)
		case "admin_token":
			if err := singleArg(d, &h.AdminToken); err != nil {
				return err
			}
		case "error_pages":
			if err := singleArg(d, &h.ErrorPages); err != nil {
				return err
			}
		case "second_factor":
			if err := singleArg(d, &h.SecondFactor); err != nil {
				return err
			}
		default:
			return d.Errf("unknown pg_session option %q", d.Val())
		}
	}
	return at.locate(d, h.check())
}

// optionPositions remembers where each option of a block was set, so that
// a rule broken at the block's end is reported at the option at fault.
type optionPositions map[string]string

func (at optionPositions) record(d *caddyfile.Dispenser) {
	at[d.Val()] = fmt.Sprintf("%s:%d", d.File(), d.Line())
}

// locate gives err, from a block's rules, the file and line of its option,
// in the form of the dispenser's own errors.
func (at optionPositions) locate(d *caddyfile.Dispenser, err error) error {
	var optErr *optionError
	if err == nil || !errors.As(err, &optErr) {
		return err
	}
	if pos, ok := at[optErr.option]; ok {
		return fmt.Errorf("%s, at %s", optErr.msg, pos)
	}
	return d.Err(optErr.msg)
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

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	opt := d.Val()
	var s string
	if err := singleArg(d, &s); err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, d.Errf("%s: %q is not a duration (examples: 90s, 30m, 12h, 7d)", opt, s)
	}
	if dur <= 0 {
		return 0, d.Errf("%s must be positive, not %q", opt, s)
	}
	return caddy.Duration(dur), nil
}

func onOffArg(d *caddyfile.Dispenser) (bool, error) {
	opt := d.Val()
	var s string
	if err := singleArg(d, &s); err != nil {
		return false, err
	}
	switch s {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, d.Errf("%s must be on or off, not %q", opt, s)
}

func pathArg(d *caddyfile.Dispenser, dst *string) error {
	opt := d.Val()
	if err := singleArg(d, dst); err != nil {
		return err
	}
	if !strings.HasPrefix(*dst, "/") {
		return d.Errf("%s must start with /, not %q", opt, *dst)
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
