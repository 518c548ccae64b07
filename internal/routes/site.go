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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/engine"
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
	Throttle           store.Throttle
	ClearSiteDataCache bool
	// CaddyErrorPages hands refusals to the site's handle_errors.
	CaddyErrorPages bool
	// RequireSecondFactor is second_factor required.
	RequireSecondFactor bool
	AdminToken          []byte // nil without admin_token
	LoginPage           *template.Template
	LoginPageCSP        string // the login page's, which may be the site's own page
	BuiltinPageCSP      string // the plugin's own pages'
}

// Shared is what the app gives the routes of every site it serves: the
// store, the server's memory of sessions, the keys and the metrics. The app
// fills in Ceremonies and BeginLimit at Start, before any request.
type Shared struct {
	Store *store.Store
	// Look finds the live session of a token, from memory where memory is
	// trusted (engine.Sessions.Look): a method of the engine itself, so
	// that a request served from memory runs no code of the app's.
	Look         func(ctx context.Context, token string, now time.Time) (engine.Session, error)
	Memory       Memory
	Secrets      *SecretBox // from secrets_key; nil without it
	Ceremonies   *CeremonySeal
	BeginLimit   *AddressLimiter
	KeepsHistory bool // whether sign-in attempts are recorded
	Metrics      Metrics
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
}

// Site is one site's routes and session path.
type Site struct {
	Config
	shared *Shared
	store  *store.Store
	logger *zap.Logger

	originGuard    *http.CrossOriginProtection
	trustedOrigins map[string]bool
	router         router
	renewing       sync.Map // sessions being renewed now, so one request per session writes
}

// New builds a site's routes from its options, once.
func New(cfg Config, shared *Shared, logger *zap.Logger) *Site {
	s := &Site{Config: cfg, shared: shared, store: shared.Store, logger: logger}
	s.originGuard = http.NewCrossOriginProtection()
	s.trustedOrigins = make(map[string]bool, len(cfg.TrustedOrigins))
	for _, origin := range cfg.TrustedOrigins {
		s.trustedOrigins[origin] = true
		// A malformed origin is the handler's Validate's to report.
		s.originGuard.AddTrustedOrigin(origin)
	}
	s.addRoutes()
	return s
}

// Identity headers the gate and the routes set on requests they let
// through, for an upstream behind reverse_proxy. Client-sent copies are
// always deleted first, so an upstream can trust them.
const (
	HeaderUserID   = "X-Auth-User-Id"
	HeaderUsername = "X-Auth-Username"
)
