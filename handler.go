package pgsession

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/access"
	"github.com/pgsession/caddy-pgsession/internal/routes"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// Defaults of the handler's options.
const (
	DefaultCookieName  = "session"
	DefaultLifetime    = 7 * 24 * time.Hour
	DefaultLoginPath   = "/login"
	DefaultLogoutPath  = "/logout"
	DefaultAPIPath     = "/api/auth"
	DefaultAccountPath = "/account"
	// DefaultResetLinkLifetime is how long a password reset link works.
	DefaultResetLinkLifetime = 30 * time.Minute
	// DefaultAdminPath is where the admin page is, unless admin_path says otherwise.
	DefaultAdminPath = "/admin"
	// DefaultRememberLifetime is how long a "remember me" session lasts.
	DefaultRememberLifetime = 30 * 24 * time.Hour
	// DefaultInvitationLifetime is how long an invitation's link works.
	DefaultInvitationLifetime = 7 * 24 * time.Hour
	// minAdminTokenLength keeps the admin token beyond guessing.
	minAdminTokenLength = 32
)

// Identity headers the handler sets on requests it lets through, for an
// upstream behind reverse_proxy. Client-sent copies are always deleted first,
// so an upstream can trust them.
const (
	HeaderUserID   = routes.HeaderUserID
	HeaderUsername = routes.HeaderUsername
	HeaderGroups   = routes.HeaderGroups
	HeaderMethod   = routes.HeaderMethod
)

// HeaderAdminToken carries the admin token, as does "Authorization: Bearer";
// it is never taken from a query string, which would land in access logs
// and browser history.
const HeaderAdminToken = "X-Admin-Token"

// Handler is the pg_session HTTP handler: it lets a request through only
// with a live session cookie, and serves the login and logout routes itself.
type Handler struct {
	// Public lists path patterns served without a session, in the syntax of
	// Caddy's path matcher (e.g. /assets/*, /favicon.ico).
	Public []string `json:"public,omitempty"`

	// CookieName is the session cookie's name. Default: session.
	CookieName string `json:"cookie_name,omitempty"`

	// Lifetime is how long a session lasts after login, at least 1s; 0 is
	// refused. Default: 7d.
	Lifetime caddy.Duration `json:"lifetime,omitempty"`

	// SameSite is the cookie's SameSite attribute: lax, strict or none
	// (none requires secure on). Default: lax.
	SameSite string `json:"same_site,omitempty"`

	// Secure sets the cookie's Secure attribute: auto (when the request came
	// over HTTPS), on, or off. Default: auto.
	Secure string `json:"secure,omitempty"`

	// Registration lets visitors create their own accounts. Default: false.
	Registration bool `json:"registration,omitempty"`

	// LoginPath is the login page. Default: /login.
	LoginPath string `json:"login_path,omitempty"`

	// LogoutPath takes a POST that ends the session. Default: /logout.
	LogoutPath string `json:"logout_path,omitempty"`

	// APIPath is the prefix of the JSON routes (login, register, logout,
	// me). Default: /api/auth.
	APIPath string `json:"api_path,omitempty"`

	// LoginTemplate is a file holding the site's own login page, an
	// html/template executed with the same data as the built-in one.
	LoginTemplate string `json:"login_template,omitempty"`

	// IdleTimeout ends a session unused for that long, even within its
	// lifetime. It applies to sessions created while it is set. At least
	// 1s; 0 turns it off. Default: off.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// RenewalInterval is how often a session in use is written back (its
	// last use, and so its idle expiry): at most once per interval, never on
	// every request; 0 is refused. Default: a tenth of idle_timeout, at
	// most 1m.
	RenewalInterval caddy.Duration `json:"renewal_interval,omitempty"`

	// RememberLifetime is how long a session lasts when the user ticks
	// "remember me"; its cookie then outlives the browser session. 0 turns
	// remember me off. Default: 30d.
	RememberLifetime *caddy.Duration `json:"remember_lifetime,omitempty"`

	// MaxSessionsPerUser caps a user's sessions: a login beyond it ends
	// their least recently used ones. Default: 0, unlimited.
	MaxSessionsPerUser int `json:"max_sessions_per_user,omitempty"`

	// AccountPath is the page where a user sees and ends their sessions
	// and changes their password. Default: /account.
	AccountPath string `json:"account_path,omitempty"`

	// AdminPath is the admin page in the browser, for signed-in admins:
	// users, their sessions and groups, invitations and the audit trail.
	// "off" turns the page off (the admin API stays). Default: /admin.
	AdminPath string `json:"admin_path,omitempty"`

	// SiteName names the site on the plugin's pages: the login page says
	// "Sign in to <name>", and the other pages' titles end with it.
	// Default: none ("Sign in").
	SiteName string `json:"site_name,omitempty"`

	// Home is the site's home page, a path on this site, which the account
	// page and the error pages link back to. Default: /.
	Home string `json:"home,omitempty"`

	// PasskeyRPID is the WebAuthn relying party ID passkeys are bound to: the
	// site's domain, or a parent domain of it, e.g. example.com for a site
	// at login.example.com and docs.example.com. Default: the host the
	// request came to, without its port.
	PasskeyRPID string `json:"passkey_rp_id,omitempty"`

	// PasskeyOrigins are the origins (scheme://host[:port]) whose pages may
	// register and use passkeys, when a site answers to several names.
	// Default: the origin the request came to.
	PasskeyOrigins []string `json:"passkey_origins,omitempty"`

	// MaxFailedLoginsPerAccount is how many failed logins one account may
	// have within FailedLoginWindow before its logins get 429, a correct
	// password included; 0 is refused. Default: 10.
	MaxFailedLoginsPerAccount int `json:"max_failed_logins_per_account,omitempty"`

	// MaxFailedLoginsPerIP is the same limit per client IP, against one
	// address trying many accounts; 0 is refused. Default: 50.
	MaxFailedLoginsPerIP int `json:"max_failed_logins_per_ip,omitempty"`

	// FailedLoginWindow is how long a failed login (or a registration)
	// counts; 0 is refused. Default: 15m.
	FailedLoginWindow caddy.Duration `json:"failed_login_window,omitempty"`

	// MaxRegistrationsPerIP is how many accounts one client address (an
	// IPv6 client by its /64) may create within FailedLoginWindow; they also
	// count toward MaxFailedLoginsPerIP, since each costs a password hash;
	// 0 is refused. Default: 5.
	MaxRegistrationsPerIP int `json:"max_registrations_per_ip,omitempty"`

	// CacheControl, "on", marks every response the gate let through as
	// private: HTML gets "Cache-Control: no-store" (no back button into a
	// protected page after logout), anything else "private" (with
	// "no-cache" when the site set nothing), and "public" and "s-maxage"
	// are removed, so no shared cache or CDN keeps a protected response.
	// "off" leaves the site's Cache-Control alone. Default: on.
	CacheControl string `json:"cache_control,omitempty"`

	// TrustedOrigins are other origins (scheme://host[:port]) allowed to
	// make state-changing requests, e.g. a separate front-end domain.
	TrustedOrigins []string `json:"trusted_origins,omitempty"`

	// CookieDomain makes the session cookie valid for this domain and
	// every subdomain of it (its Domain attribute), so one sign-in serves
	// every site under it: single sign-on. Default: none, a cookie of the
	// site's host only.
	CookieDomain string `json:"cookie_domain,omitempty"`

	// LoginURL is the login page of the portal, the one site under
	// cookie_domain where browsers sign in, e.g.
	// https://auth.example.com/login: a browser without a session is sent
	// there, with the address to come back to. The site whose host it
	// names is the portal and signs browsers in itself, so one snippet
	// serves every site. Needs cookie_domain. Default: none, each site
	// signs browsers in itself.
	LoginURL string `json:"login_url,omitempty"`

	// CrossOriginProtection refuses, with 403, a state-changing request
	// (not GET, HEAD or OPTIONS) to a protected path that carries a session
	// cookie but comes from another origin, before it reaches the site.
	// "off" leaves that to the site. Default: on.
	CrossOriginProtection string `json:"cross_origin_protection,omitempty"`

	// ClearSiteDataCache adds "cache" to the Clear-Site-Data header of a
	// logout, so the browser also drops pages it cached. Default: false
	// (only "cookies").
	ClearSiteDataCache bool `json:"clear_site_data_cache,omitempty"`

	// AdminToken, sent in the X-Admin-Token header or as a bearer token in
	// Authorization, grants the admin routes.
	// Placeholders such as {env.ADMIN_TOKEN} are expanded, and one that is
	// unset or empty is an error; at least 32 characters. Default: none
	// (admin routes need an admin's session).
	AdminToken string `json:"admin_token,omitempty"`

	// ErrorPages says who answers a refusal (401 to a script, 403, 429,
	// 503, and the routes' errors): "builtin", the plugin's own answer (a
	// page for a browser, JSON for anything else), or "caddy", the site's
	// handle_errors, with Caddy's {err.*} placeholders and
	// {http.auth.pg_session.reason} naming the reason. A browser without a
	// session is sent to the login page either way. Default: builtin.
	ErrorPages string `json:"error_pages,omitempty"`

	// SecondFactor is the site's policy on second factors: "optional", each
	// user chooses; "required", a user without one who signs in can only
	// set one up (the account page) until they have. Required needs
	// secrets_key in the pg_session global option. Default: optional.
	SecondFactor string `json:"second_factor,omitempty"`

	// InvitationLifetime is how long an invitation to create an account
	// stays open when the admin who makes it does not say, at least 1s and
	// at most 366d. Default: 7d.
	InvitationLifetime caddy.Duration `json:"invitation_lifetime,omitempty"`
	// VerifyEmail asks a registration for an email address and keeps the
	// account from signing in until the link mailed to it is opened; a
	// user with an unverified address cannot sign in, one with none is not
	// affected. Needs smtp in the pg_session global option. Default: false.
	VerifyEmail bool `json:"verify_email,omitempty"`
	// ResetLinkLifetime is how long a password reset link sent by mail
	// works (the site needs the global smtp option to send one); a newer
	// link or any password change ends it sooner. Default: 30m.
	ResetLinkLifetime caddy.Duration `json:"reset_link_lifetime,omitempty"`

	// Rules decide who may see which gated path, in order: the first whose
	// paths and methods match a request decides it (see internal/access).
	// A path no rule matches is open to any signed-in user, as without
	// rules; public paths are served before any rule is read.
	Rules []access.Rule `json:"rules,omitempty"`
	// ruleAt is where the Caddyfile wrote each rule, for its errors.
	ruleAt []caddyfile.Token

	zeroes []string // options JSON gave as 0 where 0 is refused (see rangeRules)

	app    *App
	store  *store.Store
	logger *zap.Logger

	// Compiled from the options by Provision.
	site             *routes.Site // the own routes and the session path
	public           publicPaths
	guardSiteWrites  bool // cross_origin_protection on
	privateResponses bool // cache_control on
	adminToken       []byte
	loginURL         *url.URL
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.pg_session",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the pg_session app, fills in defaults and compiles the
// options; Validate, which Caddy calls next, checks them.
func (h *Handler) Provision(ctx caddy.Context) error {
	appIface, err := ctx.AppIfConfigured("pg_session")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return errNoApp
	}
	if err != nil {
		return fmt.Errorf("pg_session app: %w", err)
	}
	return h.provision(ctx, appIface.(*App))
}

// provision sets the handler up on app; tests call it with an app of their
// own, as Caddy's config would otherwise have to hold the app.
func (h *Handler) provision(ctx caddy.Context, app *App) error {
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok {
		keepKeysPerConnection(srv)
		if err := h.checkSiteNames(srv); err != nil {
			return err
		}
	}
	// Tests give a logger of their own before provisioning.
	if h.logger == nil {
		h.logger = ctx.Logger()
	}
	h.app = app
	h.store = app.Store()

	h.CookieName = cmp.Or(h.CookieName, DefaultCookieName)
	h.Lifetime = cmp.Or(h.Lifetime, caddy.Duration(DefaultLifetime))
	h.Secure = strings.ToLower(cmp.Or(h.Secure, "auto"))
	h.SameSite = strings.ToLower(cmp.Or(h.SameSite, "lax"))
	if h.RenewalInterval == 0 {
		h.RenewalInterval = caddy.Duration(time.Minute)
		if h.IdleTimeout > 0 {
			h.RenewalInterval = min(h.RenewalInterval, h.IdleTimeout/10)
		}
	}
	h.guardSiteWrites = h.CrossOriginProtection != "off"
	h.privateResponses = h.CacheControl != "off"
	if err := h.checkWith(app); err != nil {
		return err
	}

	if h.AdminToken != "" {
		// An unset {env.…} must not quietly become an empty or short token.
		token, err := caddy.NewReplacer().ReplaceOrErr(h.AdminToken, true, true)
		if err != nil {
			return fmt.Errorf("admin_token: %w", err)
		}
		h.adminToken = []byte(token)
	}

	h.LoginPath = cmp.Or(h.LoginPath, DefaultLoginPath)
	h.LogoutPath = cmp.Or(h.LogoutPath, DefaultLogoutPath)
	h.APIPath = strings.TrimSuffix(cmp.Or(h.APIPath, DefaultAPIPath), "/")
	h.AccountPath = cmp.Or(h.AccountPath, DefaultAccountPath)
	h.AdminPath = cmp.Or(h.AdminPath, DefaultAdminPath)
	h.Home = cmp.Or(h.Home, "/")
	if h.LoginURL != "" {
		// Validate, next, says what is wrong with one that does not parse.
		h.loginURL, _ = url.Parse(h.LoginURL)
	}

	var err error
	if h.public, err = newPublicPaths(ctx, h.Public); err != nil {
		return fmt.Errorf("public: %w", err)
	}
	cfg, err := h.routesConfig()
	if err != nil {
		return err
	}
	h.site = routes.New(cfg, app.shared, h.logger)
	return nil
}

// routesConfig is the options as the routes read them, once the defaults
// are in.
func (h *Handler) routesConfig() (routes.Config, error) {
	cfg := routes.Config{
		CookieName: h.CookieName,
		Secure:     h.Secure,
		SameSiteMode: map[string]http.SameSite{"lax": http.SameSiteLaxMode, "strict": http.SameSiteStrictMode,
			"none": http.SameSiteNoneMode}[h.SameSite],
		Lifetime:           time.Duration(h.Lifetime),
		IdleTimeout:        time.Duration(h.IdleTimeout),
		RenewalInterval:    time.Duration(h.RenewalInterval),
		RememberFor:        DefaultRememberLifetime,
		MaxSessionsPerUser: h.MaxSessionsPerUser,
		Registration:       h.Registration,
		LoginPath:          h.LoginPath,
		LogoutPath:         h.LogoutPath,
		APIPath:            h.APIPath,
		AccountPath:        h.AccountPath,
		SiteName:           h.SiteName,
		Home:               h.Home,
		PasskeyRPID:        h.PasskeyRPID,
		PasskeyOrigins:     h.PasskeyOrigins,
		TrustedOrigins:     h.TrustedOrigins,
		CookieDomain:       h.CookieDomain,
		LoginURL:           h.loginURL,
		Throttle: store.Throttle{
			PerAccount:         cmp.Or(h.MaxFailedLoginsPerAccount, 10),
			PerIP:              cmp.Or(h.MaxFailedLoginsPerIP, 50),
			RegistrationsPerIP: cmp.Or(h.MaxRegistrationsPerIP, 5),
			Window:             time.Duration(cmp.Or(h.FailedLoginWindow, caddy.Duration(15*time.Minute))),
		},
		ClearSiteDataCache:  h.ClearSiteDataCache,
		CaddyErrorPages:     h.ErrorPages == "caddy",
		RequireSecondFactor: h.SecondFactor == "required",
		VerifyEmail:         h.VerifyEmail,
		AdminToken:          h.adminToken,
		InvitationLifetime:  time.Duration(cmp.Or(h.InvitationLifetime, caddy.Duration(DefaultInvitationLifetime))),
		ResetLinkLifetime:   time.Duration(cmp.Or(h.ResetLinkLifetime, caddy.Duration(DefaultResetLinkLifetime))),
	}
	if h.AdminPath != "off" {
		cfg.AdminPath = strings.TrimSuffix(h.AdminPath, "/")
	}
	if len(h.Rules) > 0 {
		policy, err := access.Compile(h.Rules, ruleOptions(true))
		if err != nil {
			return cfg, err
		}
		cfg.Policy = policy
	}
	if h.RememberLifetime != nil {
		cfg.RememberFor = time.Duration(*h.RememberLifetime)
	}
	// The one script the pages may run is the passkey script, which talks
	// to this site only.
	cfg.BuiltinPageCSP = "default-src 'none'; style-src " + web.StyleHash() + "; script-src " + web.ScriptHash() +
		"; connect-src 'self'; form-action " + h.formTargets() + "; frame-ancestors 'none'; base-uri 'none'"
	cfg.LoginPage, cfg.LoginPageCSP = web.DefaultLoginTemplate(), cfg.BuiltinPageCSP
	if h.LoginTemplate != "" {
		var err error
		if cfg.LoginPage, err = web.ParseLoginTemplate(h.LoginTemplate); err != nil {
			return cfg, err
		}
		// A site's own page may load its own assets; only framing is forbidden.
		cfg.LoginPageCSP = "frame-ancestors 'none'"
	}
	return cfg, nil
}

// formTargets is where the pages' forms may lead, as CSP's form-action
// says: this site, and on a portal every site a sign-in may return to,
// since browsers hold the redirect after a form to the same rule.
func (h *Handler) formTargets() string {
	targets := []string{"'self'"}
	if h.CookieDomain != "" {
		targets = append(targets, h.CookieDomain+":*", "*."+h.CookieDomain+":*")
	}
	// The account page's "Link" form leads to the provider's sign-in page.
	if h.app != nil {
		for _, p := range h.app.IdentityProviders {
			if origin := providerOrigin(p); origin != "" && !slices.Contains(targets, origin) {
				targets = append(targets, origin)
			}
		}
	}
	return strings.Join(append(targets, h.TrustedOrigins...), " ")
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
