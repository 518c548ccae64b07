// Package routes is the product: the plugin's own routes (signing in and
// out, the account page, the second factor, passkeys, the sign-in history,
// the admin API), the one session path that the gate and every route take,
// and how the plugin answers a request it refuses. It knows nothing of
// Caddy's module system: the handler builds a Site once, at Provision, from
// its options and what its app shares, and hands it each request.
package routes

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/access"
	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/internal/identity"
	"github.com/pgsession/caddy-pgsession/store"
)

// Config is a site's options, as the handler filled in its defaults and
// compiled them; the routes only read it.
type Config struct {
	CookieName         string
	Secure             string // auto, on or off
	SameSiteMode       http.SameSite
	Lifetime           time.Duration
	IdleTimeout        time.Duration
	RenewalInterval    time.Duration
	RememberFor        time.Duration // 0: remember me is off
	MaxSessionsPerUser int
	Registration       bool
	LoginPath          string
	LogoutPath         string
	APIPath            string
	AccountPath        string
	SiteName           string
	Home               string
	PasskeyRPID        string
	PasskeyOrigins     []string
	TrustedOrigins     []string
	// CookieDomain is cookie_domain: the session cookie's Domain, lower
	// case; "" for a cookie of this host only.
	CookieDomain string
	// LoginURL is login_url, the portal's login page; nil when the site
	// signs browsers in itself.
	LoginURL           *url.URL
	Throttle           store.Throttle
	ClearSiteDataCache bool
	// CaddyErrorPages hands refusals to the site's handle_errors.
	CaddyErrorPages bool
	// RequireSecondFactor is second_factor required.
	RequireSecondFactor bool
	AdminToken          []byte // nil without admin_token
	// Policy is the site's access rules; nil without any.
	Policy         *access.Policy
	LoginPage      *template.Template
	LoginPageCSP   string // the login page's, which may be the site's own page
	BuiltinPageCSP string // the plugin's own pages'

	// InvitationLifetime is invitation_lifetime: how long an invitation an
	// admin makes stays open unless they say otherwise.
	InvitationLifetime time.Duration
	// VerifyEmail is verify_email on: a registration gives an address, and a
	// user whose address is not verified cannot sign in (email_register.go).
	VerifyEmail bool
	// ResetLinkLifetime is reset_link_lifetime: how long a password reset
	// link works.
	ResetLinkLifetime time.Duration
	// AdminPath is admin_path, the admin page in the browser; "" when it is off.
	AdminPath string
}

// Shared is what the app gives the routes of every site it serves: the
// store, the server's memory of sessions, the keys and the metrics. The app
// fills in Ceremonies and BeginLimit at Start, before any request.
type Shared struct {
	Store *store.Store
	// Look finds the live session of a token, from memory where memory is
	// trusted (engine.Sessions.Look): a method of the engine itself, so
	// that a request served from memory runs no code of the app's.
	Look func(ctx context.Context, token string, now time.Time) (engine.Session, error)
	// Tokens finds the live session of an API token, in the same memory.
	Tokens       *engine.Sessions
	Memory       Memory
	Secrets      *SecretBox // from secrets_key; nil without it
	Ceremonies   *CeremonySeal
	BeginLimit   *AddressLimiter
	KeepsHistory bool // whether sign-in attempts are recorded
	// Providers are the identity providers of the global option, in order.
	Providers []*identity.Provider
	// Mail sends the links of password resets, address checks and
	// invitations; nil without the global smtp option.
	Mail    Mailer
	Metrics Metrics
}

// Mailer sends one plain-text message to one address, later: Send queues
// it and returns at once, so a slow or down mail server never holds a
// request, and the sender retries and counts failures itself. kind names
// the message for the metrics and the log ("reset", "verify_email",
// "email_changed", "invitation"), which never show the body: it carries a
// link that is a credential.
type Mailer interface {
	Send(kind, to, subject, body string)
}

// Memory is what the routes change in the server's memory, and what they
// tell it of the store, when a route changed or read sessions itself.
type Memory interface {
	// Forget drops one session from memory.
	Forget(engine.Key)
	// ForgetUser drops a user's sessions from memory and looks again at
	// their requests in flight, after a route changed them.
	ForgetUser(store.UserID)
	// Epoch and Renewed apply a renewal (see engine.Cache.Renewed).
	Epoch() uint64
	Renewed(s engine.Session, now time.Time, touch store.Touch, epoch uint64)
	// StoreOK and StoreFailed say that the store answered, or failed.
	StoreOK()
	StoreFailed(err error)
}

// Metrics are the counters the routes count in.
type Metrics struct {
	Logins          *prometheus.CounterVec // by outcome
	Factors         *prometheus.CounterVec // by factor and outcome
	SessionsCreated prometheus.Counter
	// Gate counts a forward-auth check's decision as the gate counts its
	// own, given the request asked about, its cookie's value and the
	// refusal (nil: allowed); nil counts nothing.
	Gate func(r *http.Request, token string, ref *Refusal)
}

// A site's parts. Each route group is a type that embeds only the parts
// it may use, so its definition lists what its routes can touch: the
// sign-in routes cannot reach the router or the admin routes, the admin
// routes cannot set a cookie, and no route sees the gate or Caddy. Every
// part embeds base directly, which keeps an option's name (h.LoginPath) one
// level shallower than any copy an embedded part holds, so the selectors of
// a route's body stay unambiguous.

// base is what every part reads: the site's options and its log.
type base struct {
	*Config
	logger *zap.Logger
}

// cookies reads, sets and clears the session cookie (cookie.go).
type cookies struct{ base }

// responder answers a request: refusals, pages, redirects (respond.go).
type responder struct {
	base
	*cookies
	memory Memory
}

// sessions is the one session path and the session rows (session.go).
type sessions struct {
	base
	*cookies
	store          *store.Store
	look           func(ctx context.Context, token string, now time.Time) (engine.Session, error)
	tokens         *engine.Sessions
	memory         Memory
	originGuard    *http.CrossOriginProtection
	trustedOrigins map[string]bool
	renewing       sync.Map // sessions being renewed now, so one request per session writes
}

// attempts throttles and records sign-in attempts (login.go, history.go).
type attempts struct {
	base
	store        *store.Store
	metrics      Metrics
	keepsHistory bool
}

// factors holds what a second factor needs: the sealed TOTP secrets, the
// relying party and its sealed ceremonies (totp.go, passkeys.go).
type factors struct {
	base
	*cookies
	store   *store.Store
	secrets *SecretBox
	// shared gives the ceremony seal and the begin limiter, which the app
	// makes at Start, after the site is built.
	shared *Shared
}

// signInRoutes are the routes that sign in and out: password, second step,
// passkey, registration, /me (login.go, secondfactor.go, passkeys_login.go).
type signInRoutes struct {
	base
	*cookies
	*responder
	*sessions
	*attempts
	*factors
	*providers
	*links
	store   *store.Store
	memory  Memory
	metrics Metrics
}

// accountRoutes are a signed-in user's own routes: sessions, password, TOTP,
// passkeys, history and the account page (account.go, totp.go,
// passkeys.go, history.go).
type accountRoutes struct {
	base
	*cookies
	*responder
	*sessions
	*attempts
	*factors
	*providers
	*links
	store  *store.Store
	memory Memory
}

// adminRoutes are the admin API (admin.go): users, their sessions, history and
// second factors.
type adminRoutes struct {
	base
	*responder
	*sessions
	*attempts
	store  *store.Store
	memory Memory
	mail   Mailer // nil without smtp: invitations are then handed to the admin
}

// adminPageRoutes are the admin page in the browser (adminpage*.go): the
// admin API's operations, shown and done through forms, for an admin's
// session only.
type adminPageRoutes struct {
	base
	*responder
	*sessions
	*adminRoutes
	store *store.Store
}

// Site is one site's routes and session path: what the handler calls.
type Site struct {
	base
	*sessions  // Resolve, for the gate and the routes
	*responder // Answer and the gate's refusals
	store      *store.Store
	router     router
	signIn     *signInRoutes
	account    *accountRoutes
	admin      *adminRoutes
	verify     *verifyRoutes
	reset      *resetRoutes
	adminPage  *adminPageRoutes
}

// New builds a site's routes from its options, once.
func New(cfg Config, shared *Shared, logger *zap.Logger) *Site {
	b := base{&cfg, logger}
	ck := &cookies{b}
	rs := &responder{b, ck, shared.Memory}
	ss := &sessions{base: b, cookies: ck, store: shared.Store, look: shared.Look, tokens: shared.Tokens, memory: shared.Memory,
		originGuard: http.NewCrossOriginProtection(), trustedOrigins: make(map[string]bool, len(cfg.TrustedOrigins))}
	for _, origin := range cfg.TrustedOrigins {
		ss.trustedOrigins[origin] = true
		// A malformed origin is the handler's Validate's to report.
		ss.originGuard.AddTrustedOrigin(origin)
	}
	at := &attempts{b, shared.Store, shared.Metrics, shared.KeepsHistory}
	fs := &factors{b, ck, shared.Store, shared.Secrets, shared}
	pv := &providers{b, ck, shared.Store, shared.Providers}
	lk := &links{b, shared.Store, shared}
	s := &Site{base: b, sessions: ss, responder: rs, store: shared.Store,
		signIn:  &signInRoutes{b, ck, rs, ss, at, fs, pv, lk, shared.Store, shared.Memory, shared.Metrics},
		account: &accountRoutes{b, ck, rs, ss, at, fs, pv, lk, shared.Store, shared.Memory},
		admin:   &adminRoutes{b, rs, ss, at, shared.Store, shared.Memory, shared.Mail},
		verify:  &verifyRoutes{b, ck, rs, ss, shared.Metrics.Gate}}
	s.reset = newResetRoutes(b, rs, s.signIn, shared)
	s.adminPage = &adminPageRoutes{b, rs, ss, s.admin, shared.Store}
	s.addRoutes()
	return s
}

// Identity headers the gate and the routes set on requests they let
// through, for an upstream behind reverse_proxy. Client-sent copies are
// always deleted first, so an upstream can trust them.
const (
	HeaderUserID   = "X-Auth-User-Id"
	HeaderUsername = "X-Auth-Username"
	// HeaderGroups names the user's groups, sorted, comma-separated; it
	// is absent for a user in no group.
	HeaderGroups = "X-Auth-Groups"
	// HeaderMethod says how the session was signed in, or stepped up to
	// since (store.MethodPassword, …); absent for an API token.
	HeaderMethod = "X-Auth-Method"
)
