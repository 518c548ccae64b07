package pgsession

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
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
	DefaultCookieName = "session"
	DefaultLifetime   = 7 * 24 * time.Hour
	DefaultLoginPath  = "/login"
	DefaultLogoutPath = "/logout"
	DefaultAPIPath    = "/api/auth"
)

// Identity headers the handler sets on requests it lets through, for an
// upstream behind reverse_proxy. Client-sent copies are always deleted first,
// so an upstream can trust them.
const (
	HeaderUserID   = "X-Auth-User-Id"
	HeaderUsername = "X-Auth-Username"
)

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

	store     *store.Store
	logger    *zap.Logger
	public    caddyhttp.MatchPath
	routes    map[string]map[string]func(http.ResponseWriter, *http.Request) error
	template  *template.Template
	csp       string
	sameSite  http.SameSite
	crossSite *http.CrossOriginProtection
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
	h.store = appIface.(*App).Store()

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

	for _, p := range []*string{&h.LoginPath, &h.LogoutPath, &h.APIPath} {
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
	h.APIPath = strings.TrimSuffix(h.APIPath, "/")

	h.public = caddyhttp.MatchPath(h.Public)
	if err := h.public.Provision(ctx); err != nil {
		return fmt.Errorf("public: %w", err)
	}

	if h.LoginTemplate != "" {
		h.template, err = web.ParseLoginTemplate(h.LoginTemplate)
		if err != nil {
			return err
		}
		// A site's own page may load its own assets; only framing is forbidden.
		h.csp = "frame-ancestors 'none'"
	} else {
		h.template = web.DefaultLoginTemplate()
		h.csp = "default-src 'none'; style-src " + web.StyleHash() +
			"; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	}
	h.crossSite = http.NewCrossOriginProtection()

	post, get := http.MethodPost, http.MethodGet
	type route = func(http.ResponseWriter, *http.Request) error
	h.routes = map[string]map[string]route{
		h.LoginPath:             {get: h.serveLoginPage, http.MethodHead: h.serveLoginPage, post: h.serveLogin},
		h.LogoutPath:            {post: h.serveLogout},
		h.APIPath + "/login":    {post: h.serveLogin},
		h.APIPath + "/logout":   {post: h.serveLogout},
		h.APIPath + "/me":       {get: h.serveMe, http.MethodHead: h.serveMe},
		h.APIPath + "/register": {post: h.serveRegister},
	}
	return nil
}

// ServeHTTP gates a request on its session cookie or serves an own route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r.Header.Del(HeaderUserID)
	r.Header.Del(HeaderUsername)

	if methods, ok := h.routes[r.URL.Path]; ok {
		return h.serveRoute(w, r, methods)
	}
	if len(h.Public) > 0 {
		public, err := h.public.MatchWithError(r)
		if err != nil {
			return caddyhttp.Error(http.StatusBadRequest, err)
		}
		if public {
			return next.ServeHTTP(w, r)
		}
	}

	sess, hadCookie, err := h.session(r)
	if err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	if sess == nil {
		h.unauthenticated(w, r, hadCookie)
		return nil
	}

	h.identify(r, sess)
	return next.ServeHTTP(w, r)
}

// serveRoute dispatches an own route by method.
func (h *Handler) serveRoute(w http.ResponseWriter, r *http.Request, methods map[string]func(http.ResponseWriter, *http.Request) error) error {
	serve, ok := methods[r.Method]
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSONError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return nil
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost {
		if err := h.crossSite.Check(r); err != nil {
			writeJSONError(w, http.StatusForbidden, "Cross-origin request refused")
			return nil
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	}
	return serve(w, r)
}

// session returns the live session of the request's cookie; nil with a nil
// error when there is none, and whether a cookie was sent at all.
func (h *Handler) session(r *http.Request) (*store.Session, bool, error) {
	token, ok := h.token(r)
	if !ok {
		return nil, false, nil
	}
	sess, err := h.store.GetSession(r.Context(), token)
	return sess, true, err
}

// token returns the session cookie's value, if the request has one.
func (h *Handler) token(r *http.Request) (string, bool) {
	c, err := r.Cookie(h.CookieName)
	if err != nil || c.Value == "" {
		return "", false
	}
	return c.Value, true
}

// identify makes the session's user known to the rest of Caddy: the
// placeholders Caddy's own authentication sets (the access log shows user_id)
// and the identity headers for an upstream.
func (h *Handler) identify(r *http.Request, sess *store.Session) {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		repl.Set("http.auth.user.id", sess.User.ID)
		repl.Set("http.auth.user.username", sess.User.Username)
	}
	r.Header.Set(HeaderUserID, sess.User.ID)
	r.Header.Set(HeaderUsername, sess.User.Username)
}

// unauthenticated sends a browser to the login page and tells an API client why it was refused.
func (h *Handler) unauthenticated(w http.ResponseWriter, r *http.Request, hadCookie bool) {
	if hadCookie {
		http.SetCookie(w, h.clearCookie(r))
	}
	w.Header().Set("Cache-Control", "no-store")
	if wantsHTML(r) {
		http.Redirect(w, r, h.LoginPath+"?redirect="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	if hadCookie {
		writeJSONError(w, http.StatusUnauthorized, "Session expired")
		return
	}
	writeJSONError(w, http.StatusUnauthorized, "Not authenticated")
}

// storeUnavailable answers 503 when the database fails. The cookie is left
// alone: users are not logged out because the database blinked.
func (h *Handler) storeUnavailable(w http.ResponseWriter, err error) {
	if c := h.logger.Check(zapcore.ErrorLevel, "session store unavailable"); c != nil {
		c.Write(zap.Error(err))
	}
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
