package pgsession

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

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
	// DefaultRememberLifetime is how long a "remember me" session lasts.
	DefaultRememberLifetime = 30 * 24 * time.Hour
	// minAdminTokenLength keeps the admin token beyond guessing.
	minAdminTokenLength = 32
)

// Identity headers the handler sets on requests it lets through, for an
// upstream behind reverse_proxy. Client-sent copies are always deleted first,
// so an upstream can trust them.
const (
	HeaderUserID   = "X-Auth-User-Id"
	HeaderUsername = "X-Auth-Username"
)

// HeaderAdminToken carries the admin token, as does "Authorization: Bearer";
// it is never taken from a query string, which would land in access logs
// and browser history.
const HeaderAdminToken = "X-Admin-Token"

// maxBodyBytes caps the body of the handler's own POST routes; a login
// needs a few hundred bytes.
const maxBodyBytes = 64 << 10

// retryAfterSeconds is what a client is told to wait when the database is down.
const retryAfterSeconds = "5"

// Handler is the pg_session HTTP handler: it lets a request through only
// with a live session cookie, and serves the login and logout routes itself.
type Handler struct {
	// Public lists path patterns served without a session, in the syntax of
	// Caddy's path matcher (e.g. /assets/*, /favicon.ico).
	Public []string `json:"public,omitempty"`

	// CookieName is the session cookie's name. Default: session.
	CookieName string `json:"cookie_name,omitempty"`

	// Lifetime is how long a session lasts after login. Default: 7d.
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
	// lifetime. It applies to sessions created while it is set. Default: off.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// RenewalInterval is how often a session in use is written back (its
	// last use, and so its idle expiry): at most once per interval, never on
	// every request. Default: a tenth of idle_timeout, at most 1m.
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

	// MaxFailedLoginsPerAccount is how many failed logins one account may
	// have within FailedLoginWindow before its logins get 429, a correct
	// password included. Default: 10.
	MaxFailedLoginsPerAccount int `json:"max_failed_logins_per_account,omitempty"`

	// MaxFailedLoginsPerIP is the same limit per client IP, against one
	// address trying many accounts. Default: 50.
	MaxFailedLoginsPerIP int `json:"max_failed_logins_per_ip,omitempty"`

	// FailedLoginWindow is how long a failed login (or a registration)
	// counts. Default: 15m.
	FailedLoginWindow caddy.Duration `json:"failed_login_window,omitempty"`

	// MaxRegistrationsPerIP is how many accounts one client address (an
	// IPv6 client by its /64) may create within FailedLoginWindow; they also
	// count toward MaxFailedLoginsPerIP, since each costs a password hash.
	// Default: 5.
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
	// Placeholders such as {env.ADMIN_TOKEN} are expanded; at least 32
	// characters. Default: none (admin routes need an admin's session).
	AdminToken string `json:"admin_token,omitempty"`

	app            *App
	store          *store.Store
	logger         *zap.Logger
	public         caddyhttp.MatchPath
	router         router
	template       *template.Template
	csp            string // of the login page, which may be the site's own
	pageCSP        string // of the built-in pages
	sameSite       http.SameSite
	crossSite      *http.CrossOriginProtection
	adminToken     []byte
	rememberFor    time.Duration
	throttle       store.Throttle
	guardSite      bool // CrossOriginProtection is on
	privateResp    bool // CacheControl is on
	trustedOrigins map[string]bool
	renewing       *sync.Map // session ids being renewed now, so one request per session writes
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.pg_session",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the pg_session app and checks the options.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	appIface, err := ctx.AppIfConfigured("pg_session")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return errors.New("the pg_session handler needs the pg_session app: add a global option block " +
			"`{ pg_session { database_url ... } }` at the top of the Caddyfile")
	}
	if err != nil {
		return fmt.Errorf("pg_session app: %w", err)
	}
	return h.provision(ctx, appIface.(*App))
}

// provision sets the handler up on app; tests call it with an app of their
// own, as Caddy's config would otherwise have to hold the app.
func (h *Handler) provision(ctx caddy.Context, app *App) error {
	h.logger = ctx.Logger()
	h.app = app
	h.store = app.Store()
	var err error

	if h.CookieName == "" {
		h.CookieName = DefaultCookieName
	}
	if !validCookieName(h.CookieName) {
		return fmt.Errorf("cookie_name %q is not a valid cookie name", h.CookieName)
	}
	if h.Lifetime == 0 {
		h.Lifetime = caddy.Duration(DefaultLifetime)
	}
	if h.Lifetime < caddy.Duration(time.Second) {
		return fmt.Errorf("lifetime must be at least one second")
	}
	switch strings.ToLower(h.Secure) {
	case "", "auto":
		h.Secure = "auto"
	case "on", "off":
		h.Secure = strings.ToLower(h.Secure)
	default:
		return fmt.Errorf("secure must be auto, on or off, not %q", h.Secure)
	}
	switch strings.ToLower(h.SameSite) {
	case "", "lax":
		h.sameSite = http.SameSiteLaxMode
	case "strict":
		h.sameSite = http.SameSiteStrictMode
	case "none":
		if h.Secure != "on" {
			return errors.New("same_site none needs secure on: browsers drop SameSite=None cookies that are not Secure")
		}
		h.sameSite = http.SameSiteNoneMode
	default:
		return fmt.Errorf("same_site must be lax, strict or none, not %q", h.SameSite)
	}

	if h.IdleTimeout < 0 || h.RenewalInterval < 0 || h.MaxSessionsPerUser < 0 {
		return errors.New("idle_timeout, renewal_interval and max_sessions_per_user must not be negative")
	}
	if h.IdleTimeout > 0 && h.IdleTimeout < caddy.Duration(time.Second) {
		return errors.New("idle_timeout must be at least one second")
	}
	if err := checkRenewal(h.IdleTimeout, h.RenewalInterval); err != nil {
		return err
	}
	if h.RenewalInterval == 0 {
		h.RenewalInterval = caddy.Duration(time.Minute)
		if h.IdleTimeout > 0 {
			h.RenewalInterval = min(h.RenewalInterval, h.IdleTimeout/10)
		}
	}
	h.rememberFor = DefaultRememberLifetime
	if h.RememberLifetime != nil {
		if *h.RememberLifetime < 0 {
			return errors.New("remember_lifetime must not be negative")
		}
		h.rememberFor = time.Duration(*h.RememberLifetime)
	}
	if h.MaxFailedLoginsPerAccount < 0 || h.MaxFailedLoginsPerIP < 0 || h.FailedLoginWindow < 0 {
		return errors.New("max_failed_logins_per_account, max_failed_logins_per_ip and failed_login_window must not be negative")
	}
	if h.MaxRegistrationsPerIP < 0 {
		return errors.New("max_registrations_per_ip must not be negative")
	}
	h.throttle = store.Throttle{PerAccount: 10, PerIP: 50, RegistrationsPerIP: 5, Window: 15 * time.Minute}
	if h.MaxRegistrationsPerIP > 0 {
		h.throttle.RegistrationsPerIP = h.MaxRegistrationsPerIP
	}
	if h.MaxFailedLoginsPerAccount > 0 {
		h.throttle.PerAccount = h.MaxFailedLoginsPerAccount
	}
	if h.MaxFailedLoginsPerIP > 0 {
		h.throttle.PerIP = h.MaxFailedLoginsPerIP
	}
	if h.FailedLoginWindow > 0 {
		h.throttle.Window = time.Duration(h.FailedLoginWindow)
	}
	switch h.CrossOriginProtection {
	case "", "on":
		h.guardSite = true
	case "off":
	default:
		return fmt.Errorf("cross_origin_protection must be on or off, not %q", h.CrossOriginProtection)
	}
	switch h.CacheControl {
	case "", "on":
		h.privateResp = true
	case "off":
	default:
		return fmt.Errorf("cache_control must be on or off, not %q", h.CacheControl)
	}
	h.crossSite = http.NewCrossOriginProtection()
	h.trustedOrigins = make(map[string]bool, len(h.TrustedOrigins))
	for _, origin := range h.TrustedOrigins {
		h.trustedOrigins[origin] = true
		if err := checkOrigin(origin); err != nil {
			return fmt.Errorf("trusted_origins: %w", err)
		}
		if err := h.crossSite.AddTrustedOrigin(origin); err != nil {
			return fmt.Errorf("trusted_origins: %w", err)
		}
	}
	// Browsers accept a __Host- cookie only with Secure, Path=/ and no
	// Domain, and a __Secure- one only with Secure; the handler always sends
	// Path=/ and no Domain, so Secure is what must hold.
	if (strings.HasPrefix(h.CookieName, "__Host-") || strings.HasPrefix(h.CookieName, "__Secure-")) && h.Secure == "off" {
		return fmt.Errorf("cookie_name %s needs a Secure cookie, but secure is off: browsers would drop it", h.CookieName)
	}

	if h.AdminToken != "" {
		token := caddy.NewReplacer().ReplaceAll(h.AdminToken, "")
		if len(token) < minAdminTokenLength {
			return fmt.Errorf("admin_token must be at least %d characters (it is %d): "+
				"generate one with `openssl rand -base64 32`", minAdminTokenLength, len(token))
		}
		h.adminToken = []byte(token)
	}

	for _, p := range []*string{&h.LoginPath, &h.LogoutPath, &h.APIPath, &h.AccountPath} {
		if *p != "" && !strings.HasPrefix(*p, "/") {
			return fmt.Errorf("route path %q must start with /", *p)
		}
	}
	if h.LoginPath == "" {
		h.LoginPath = DefaultLoginPath
	}
	if h.LogoutPath == "" {
		h.LogoutPath = DefaultLogoutPath
	}
	if h.APIPath == "" {
		h.APIPath = DefaultAPIPath
	}
	if h.AccountPath == "" {
		h.AccountPath = DefaultAccountPath
	}
	h.APIPath = strings.TrimSuffix(h.APIPath, "/")

	h.public = caddyhttp.MatchPath(h.Public)
	if err := h.public.Provision(ctx); err != nil {
		return fmt.Errorf("public: %w", err)
	}

	h.pageCSP = "default-src 'none'; style-src " + web.StyleHash() +
		"; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	if h.LoginTemplate != "" {
		h.template, err = web.ParseLoginTemplate(h.LoginTemplate)
		if err != nil {
			return err
		}
		// A site's own page may load its own assets; only framing is forbidden.
		h.csp = "frame-ancestors 'none'"
	} else {
		h.template = web.DefaultLoginTemplate()
		h.csp = h.pageCSP
	}
	h.renewing = new(sync.Map)
	h.addRoutes()
	return nil
}

// addRoutes sets up the handler's own routes.
func (h *Handler) addRoutes() {
	get, post, del := http.MethodGet, http.MethodPost, http.MethodDelete
	api := h.APIPath
	rt := &h.router
	rt.add(get, h.LoginPath, anyone, h.serveLoginPage)
	rt.add(post, h.LoginPath, anyone, h.serveLogin)
	rt.add(post, h.LogoutPath, anyone, h.serveLogout)
	rt.add(post, api+"/login", anyone, h.serveLogin)
	rt.add(post, api+"/logout", anyone, h.serveLogout)
	rt.add(post, api+"/register", anyone, h.serveRegister)
	rt.add(get, api+"/me", withSession, h.serveMe)

	rt.add(get, api+"/sessions", withSession, h.serveOwnSessions)
	rt.add(del, api+"/sessions/{id}", withSession, h.serveEndOwnSession)
	rt.add(post, api+"/sessions/revoke-others", withSession, h.serveEndOtherSessions)
	rt.add(post, api+"/password", withSession, h.serveChangePassword)
	rt.add(get, h.AccountPath, anyone, h.serveAccountPage)
	rt.add(post, h.AccountPath, withSession, h.serveAccountForm)

	rt.add(get, api+"/admin/users", admin, h.serveAdminListUsers)
	rt.add(post, api+"/admin/users", admin, h.serveAdminCreateUser)
	rt.add(del, api+"/admin/users/{username}", admin, h.serveAdminDeleteUser)
	rt.add(http.MethodPatch, api+"/admin/users/{username}", admin, h.serveAdminChangeUser)
	rt.add(get, api+"/admin/users/{username}/sessions", admin, h.serveAdminUserSessions)
	rt.add(del, api+"/admin/users/{username}/sessions", admin, h.serveAdminEndUserSessions)
	rt.add(del, api+"/admin/sessions/{id}", admin, h.serveAdminEndSession)
}

// ServeHTTP gates a request on its session cookie or serves an own route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r.Header.Del(HeaderUserID)
	r.Header.Del(HeaderUsername)
	if smugglesIdentity(r) {
		writeJSONError(w, http.StatusBadRequest, "Identity headers may not be sent as trailers")
		return nil
	}
	// The admin token is taken out of the request at once, so no upstream
	// sees it. (Caddy's access log copied the request before any handler ran:
	// see the README for keeping the header out of it.)
	adminToken := h.takeAdminToken(r)

	if rte, params, allowed := h.router.match(r); rte != nil || allowed != nil {
		return h.serveRoute(w, r, rte, params, allowed, adminToken)
	}
	if len(h.Public) > 0 {
		public, err := h.public.MatchWithError(r)
		if err != nil {
			return caddyhttp.Error(http.StatusBadRequest, err)
		}
		if public {
			// Empty rather than unset: Caddy would pass an unknown
			// placeholder on as literal text, e.g. in header_up.
			if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
				repl.Set("http.auth.user.id", "")
				repl.Set("http.auth.user.username", "")
			}
			h.stripSessionCookie(r)
			return next.ServeHTTP(w, r)
		}
	}

	// A cookie makes every request from the browser carry the user's
	// authority, so a cross-site form, fetch or WebSocket must not reach
	// the site.
	token, hadCookie := h.token(r)
	if hadCookie && h.guardSite {
		if err := h.crossSite.Check(r); err != nil || isUpgrade(r) && h.crossOriginUpgrade(r) {
			writeJSONError(w, http.StatusForbidden, "Cross-origin request refused")
			return nil
		}
	}
	var sess *cachedSession
	if hadCookie {
		var err error
		if sess, err = h.app.session(r.Context(), token); err != nil {
			h.lookupFailed(w, r, err)
			return nil
		}
	}
	if sess == nil {
		h.unauthenticated(w, r, hadCookie)
		return nil
	}

	h.identify(r, sess.userID, sess.username)
	h.renew(r, sess)
	h.stripSessionCookie(r)
	if h.privateResp {
		w = newPrivateWriter(w)
	}
	// The request ends if its session does, however long its response runs.
	fl := h.app.inflight.start(r, sess)
	defer h.app.inflight.finish(fl)
	return next.ServeHTTP(w, fl.request)
}

// lookupFailed answers a request whose session could not be looked up:
// 503, unless the client went away, which needs no answer.
func (h *Handler) lookupFailed(w http.ResponseWriter, r *http.Request, err error) {
	if clientGone(r.Context(), err) {
		return
	}
	w.Header().Set("Retry-After", retryAfterSeconds)
	w.Header().Set("Cache-Control", "no-store")
	writeJSONError(w, http.StatusServiceUnavailable, "Session store unavailable, try again shortly")
}

// serveRoute checks method, origin and access for an own route, then serves it.
func (h *Handler) serveRoute(w http.ResponseWriter, r *http.Request, rte *route, params map[string]string, allowed []string, adminToken string) error {
	w.Header().Set("Cache-Control", "no-store")
	if rte == nil {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeJSONError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return nil
	}
	for k, v := range params {
		r.SetPathValue(k, v)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := h.crossSite.Check(r); err != nil {
			writeJSONError(w, http.StatusForbidden, "Cross-origin request refused")
			return nil
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	}

	c := &caller{}
	if rte.access == admin {
		// A bearer token other than the admin token is still an attempt at
		// it here, and refused as such.
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && adminToken == "" {
			adminToken = bearer
		}
		if adminToken != "" {
			if h.adminToken == nil || subtle.ConstantTimeCompare([]byte(adminToken), h.adminToken) != 1 {
				writeJSONError(w, http.StatusUnauthorized, "Invalid admin token")
				return nil
			}
			c.admin = true
			return rte.serve(w, r, c)
		}
		if h.adminToken == nil {
			// Without a token, the admin routes exist only once an admin does.
			exists, err := h.store.AnyAdmin(r.Context())
			if err != nil {
				h.storeUnavailable(w, err)
				return nil
			}
			if !exists {
				writeJSONError(w, http.StatusNotFound, "Admin routes are off: set admin_token or create an admin user")
				return nil
			}
		}
	}
	if rte.access != anyone {
		sess, hadCookie, err := h.session(r)
		if err != nil {
			h.storeUnavailable(w, err)
			return nil
		}
		if sess == nil {
			h.refuseAPI(w, r, hadCookie)
			return nil
		}
		if rte.access == admin && !sess.User.IsAdmin {
			writeJSONError(w, http.StatusForbidden, "Admin access required")
			return nil
		}
		c.session, c.token = sess, h.tokenValue(r)
		h.identify(r, sess.User.ID, sess.User.Username)
		h.renew(r, fromStore(sess, time.Now()))
	}
	return rte.serve(w, r, c)
}

// refuseAPI answers a JSON route called without a live session.
func (h *Handler) refuseAPI(w http.ResponseWriter, r *http.Request, hadCookie bool) {
	if hadCookie {
		http.SetCookie(w, h.clearCookie(r))
		writeJSONError(w, http.StatusUnauthorized, "Session expired")
		return
	}
	writeJSONError(w, http.StatusUnauthorized, "Not authenticated")
}

// renew records the session's use, at most once per renewal interval, so
// an idle timeout counts from the last use without a write per request.
// A failure is logged and the request goes on: the session is still valid.
func (h *Handler) renew(r *http.Request, sess *cachedSession) {
	now := time.Now()
	if now.Sub(sess.lastSeen) < time.Duration(h.RenewalInterval) {
		return
	}
	if _, busy := h.renewing.LoadOrStore(sess.key, struct{}{}); busy {
		return
	}
	defer h.renewing.Delete(sess.key)
	wrote, err := h.store.TouchSession(r.Context(), sess.id, time.Duration(h.RenewalInterval))
	if err != nil {
		if c := h.logger.Check(zapcore.WarnLevel, "renewing session"); c != nil {
			c.Write(zap.Error(err))
		}
		return
	}
	h.app.renewed(sess, now, wrote)
}

// session returns the live session of the request's cookie; nil with a nil
// error when there is none, and whether a cookie was sent at all.
func (h *Handler) session(r *http.Request) (*store.Session, bool, error) {
	token, ok := h.token(r)
	if !ok {
		return nil, false, nil
	}
	sess, err := h.store.GetSession(r.Context(), token)
	if err == nil {
		h.app.health.ok()
	}
	return sess, true, err
}

// tokenValue returns the session cookie's value, or "".
func (h *Handler) tokenValue(r *http.Request) string {
	t, _ := h.token(r)
	return t
}

// token returns the session cookie's value, if the request has one. It
// reads the Cookie header as net/http's Request.Cookie does, without
// parsing every other cookie on every request.
func (h *Handler) token(r *http.Request) (string, bool) {
	for _, line := range r.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || name != h.CookieName {
				continue
			}
			if len(value) > 1 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			if value == "" {
				return "", false
			}
			return value, true
		}
	}
	return "", false
}

// identify makes the session's user known to the rest of Caddy: the
// placeholders Caddy's own authentication sets (the access log shows user_id)
// and the identity headers for an upstream.
func (h *Handler) identify(r *http.Request, userID store.UserID, username string) {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		repl.Set("http.auth.user.id", string(userID))
		repl.Set("http.auth.user.username", username)
	}
	r.Header.Set(HeaderUserID, string(userID))
	r.Header.Set(HeaderUsername, username)
}

// unauthenticated sends a browser to the login page and tells an API client why it was refused.
func (h *Handler) unauthenticated(w http.ResponseWriter, r *http.Request, hadCookie bool) {
	w.Header().Set("Cache-Control", "no-store")
	if !wantsHTML(r) {
		h.refuseAPI(w, r, hadCookie)
		return
	}
	if hadCookie {
		http.SetCookie(w, h.clearCookie(r))
	}
	http.Redirect(w, r, h.LoginPath+"?redirect="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// storeUnavailable answers 503 when the database fails. The cookie is left
// alone: users are not logged out because the database blinked.
func (h *Handler) storeUnavailable(w http.ResponseWriter, err error) {
	h.app.health.failed(err, false)
	w.Header().Set("Retry-After", retryAfterSeconds)
	w.Header().Set("Cache-Control", "no-store")
	writeJSONError(w, http.StatusServiceUnavailable, "Session store unavailable, try again shortly")
}

// wantsHTML tells a browser navigation from an API call: only the former
// is worth redirecting to a login page.
func wantsHTML(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// checkRenewal refuses a renewal interval longer than half the idle
// timeout: a session is written back at most once per interval, so with a
// longer one a user active all along would still reach the idle timeout
// between two write-backs and be logged out.
func checkRenewal(idle, renewal caddy.Duration) error {
	if idle <= 0 || renewal <= 0 || renewal <= idle/2 {
		return nil
	}
	return fmt.Errorf("renewal_interval %s is more than half of idle_timeout %s: an active user would be logged out "+
		"between two renewals; use renewal_interval %s or less", time.Duration(renewal), time.Duration(idle), time.Duration(idle/2))
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

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
