package routes

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/pgsession/caddy-pgsession/internal/access"
	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/store"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The one way a request becomes a session, or a refusal saying why it has
// none: the gate and every own route ask here, so a rule about sessions
// (who may pass, when a session ends) is written once.

// Source says where a request's session is looked up.
type Source int

const (
	// FromMemory answers from memory while memory is known to be up to
	// date, and from the database otherwise: the gate.
	FromMemory Source = iota
	// FromDatabase reads the session's row: the own routes, which change
	// sessions and must not act on a memory of one, and need the row.
	FromDatabase
)

// Demand is what a request asks of its session.
type Demand struct {
	From Source
	// SameOrigin refuses a request that acts with the cookie from
	// another site (the gate's guard of the site's writes).
	SameOrigin bool
	// Admin asks for an admin's session.
	Admin bool
	// BeforeSecondFactor lets a user whom second_factor required asks to
	// set one up through: the routes that set one up.
	BeforeSecondFactor bool
	// Rules applies the site's access rules to the request's method and
	// path: the gate, for the site's own paths.
	Rules bool
	// APITokens accepts an API token (Authorization: Bearer pgs_…) in
	// place of the cookie: the gate, and the admin routes for a token with
	// the admin scope. No other route takes one, so a token cannot change
	// a password, a second factor or the tokens themselves.
	APITokens bool
}

// Resolved is a request's live session, once Resolve found it. Token is
// the cookie's value whenever the request had one, even when refused.
type Resolved struct {
	engine.Session
	Token string
	row   *store.Session // the row, with FromDatabase
}

// ViaAPIToken reports whether the request was let in by an API token, whose
// Authorization header is then no business of the upstream's.
func (r Resolved) ViaAPIToken() bool { return !r.IsZero() && r.APIToken() }

// Resolve finds the live session of r's cookie and checks it against d,
// renewing it when due. now is when the request came. The refusals it
// gives: not_authenticated (no cookie), cross_origin, store_unavailable,
// session_expired (the cookie names no live session; the cookie is
// cleared), second_factor_enrolment_required, not_admin and forbidden.
func (h *sessions) Resolve(r *http.Request, d Demand, now time.Time) (Resolved, *Refusal) {
	if d.APITokens {
		if bearer, ok := bearerAPIToken(r); ok {
			res, ref := h.resolveAPIToken(r, bearer, now)
			if ref != nil {
				return res, ref
			}
			return h.admit(r, d, res, now)
		}
	}
	token, hadCookie := h.token(r)
	if !hadCookie {
		return Resolved{}, notAuthenticated()
	}
	res := Resolved{Token: token}
	// A cookie makes every request from the browser carry the user's
	// authority, so a cross-site form, fetch or WebSocket must not reach
	// the site.
	if d.SameOrigin {
		if err := h.originGuard.Check(r); err != nil || isUpgrade(r) && h.crossOriginUpgrade(r) {
			return res, refuse(ReasonCrossOrigin, "Cross-origin request refused")
		}
	}
	if err := h.lookUp(r, d.From, &res, now); err != nil {
		return res, storeUnavailable(err)
	}
	if res.IsZero() && h.CookieDomain != "" {
		// A cookie of this host only, left by a config without
		// cookie_domain, comes first and names no session: the domain's
		// cookie after it may (see otherTokens).
		for _, other := range h.otherTokens(r, token) {
			next := Resolved{Token: other}
			if err := h.lookUp(r, d.From, &next, now); err != nil {
				return res, storeUnavailable(err)
			}
			if !next.IsZero() {
				res = next
				break
			}
		}
	}
	if res.IsZero() {
		return res, sessionExpired()
	}
	return h.admit(r, d, res, now)
}

// lookUp finds the live session of res.Token from where d says, into res.
func (h *sessions) lookUp(r *http.Request, from Source, res *Resolved, now time.Time) error {
	var err error
	switch from {
	case FromMemory:
		res.Session, err = h.look(r.Context(), res.Token, now)
	case FromDatabase:
		res.row, err = h.store.GetSession(r.Context(), res.Token)
		if err == nil {
			h.memory.StoreOK()
			if res.row != nil {
				res.Session = engine.FromStore(res.row, now)
			}
		}
	}
	return err
}

// admit applies the rest of d to a live session found, and renews it when due.
func (h *sessions) admit(r *http.Request, d Demand, res Resolved, now time.Time) (Resolved, *Refusal) {
	user := res.User()
	if h.RequireSecondFactor && !user.SecondFactor && !res.SecondFactorDone() && !d.BeforeSecondFactor {
		return res, enrolmentRequired()
	}
	if d.Admin && !user.IsAdmin {
		return res, refuse(ReasonNotAdmin, "Admin access required")
	}
	if paths := res.TokenPaths(); len(paths) > 0 && !access.MatchesAny(r, paths) {
		return res, forbidden(user.Username)
	}
	if d.Rules && h.Policy != nil {
		// The user's groups travel with the session, so a decision costs
		// no query; a refused request is no use of the session to renew.
		decision := h.Policy.Decide(r, access.Subject{Username: user.Key, Groups: user.Groups, Admin: user.IsAdmin,
			SecondFactorDone: res.SecondFactorDone()})
		if !decision.Allowed {
			// A token can give no second factor: asking it for one would
			// be asking for what cannot come.
			if decision.StepUp && !res.APIToken() {
				return res, refuse(ReasonSecondFactorRequired, "This path needs a second factor")
			}
			return res, forbidden(user.Username)
		}
	}
	if !h.renew(r, res.Session, now) {
		// The database no longer has the session, though nothing announced
		// its end: this request is refused as the next one will be.
		ref := sessionExpired()
		ref.endedOnRenewal = true
		return res, ref
	}
	return res, nil
}

// bearerAPIToken returns what looks like an API token in r's
// Authorization header: a bearer token with the prefix, whatever its shape
// otherwise, so that a malformed one is refused as a token.
func bearerAPIToken(r *http.Request) (string, bool) {
	for _, v := range r.Header["Authorization"] {
		if t, ok := ParseBearer(v); ok && strings.HasPrefix(t, store.APITokenPrefix) {
			return t, true
		}
	}
	return "", false
}

// sessionRow is the row of r's live session, for a route that serves a
// visitor without a session too (nil, nil): the login, logout and account
// pages. An error is the database's, as a refusal.
func (h *sessions) sessionRow(r *http.Request) (*store.Session, error) {
	res, ref := h.Resolve(r, Demand{From: FromDatabase, BeforeSecondFactor: true}, time.Now())
	switch {
	case ref == nil:
		return res.row, nil
	case ref.reason == ReasonStoreUnavailable:
		return nil, ref
	default:
		return nil, nil
	}
}

// notAuthenticated refuses a request without a session cookie.
func notAuthenticated() *Refusal {
	return refuse(ReasonNotAuthenticated, "Not authenticated")
}

// sessionExpired refuses a request whose cookie names no live session, and
// drops the cookie.
// forbidden refuses a signed-in user whom a rule keeps out of the path:
// JSON says only "Forbidden", the page names the user.
func forbidden(username string) *Refusal {
	ref := refuse(ReasonForbidden, "Forbidden")
	ref.user = username
	return ref
}

func sessionExpired() *Refusal {
	ref := refuse(ReasonSessionExpired, "Session expired")
	ref.clearCookie = true
	return ref
}

// renew records the session's use, at most once per renewal interval, so
// an idle timeout counts from the last use without a write per request. It
// returns false when the write finds the session gone, which nothing
// announced (a DELETE with the triggers off, as pg_restore
// --disable-triggers and logical replication make): the session then ends
// on this server at once. A failure is logged and the request goes on: the
// session is still valid. now is when the request came.
func (h *sessions) renew(r *http.Request, sess engine.Session, now time.Time) bool {
	if now.Sub(sess.LastSeen()) < time.Duration(h.RenewalInterval) {
		return true
	}
	if _, busy := h.renewing.LoadOrStore(sess.Key(), struct{}{}); busy {
		return true
	}
	defer h.renewing.Delete(sess.Key())
	epoch := h.memory.Epoch()
	if sess.APIToken() {
		return h.touchAPIToken(r, sess, now, epoch)
	}
	touch, err := h.store.TouchSession(r.Context(), sess.ID(), time.Duration(h.RenewalInterval))
	if err != nil {
		if c := h.logger.Check(zapcore.WarnLevel, "renewing session"); c != nil {
			c.Write(zap.Error(err))
		}
		return true
	}
	h.memory.Renewed(sess, now, touch, epoch)
	return touch != store.SessionGone
}

// token returns the session cookie's value, if the request has one. It
// reads the Cookie header as net/http's Request.Cookie does, without
// parsing every other cookie on every request.
func (h *cookies) token(r *http.Request) (string, bool) {
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

// maxSessionCookies is how many cookies of the session's name a request's
// session is looked for in: the first, and with cookie_domain, a couple of
// stale copies before the live one.
const maxSessionCookies = 3

// otherTokens are the values of the session cookies after first, for a
// request whose first names no session.
func (h *cookies) otherTokens(r *http.Request, first string) []string {
	var values []string
	seen := false
	for _, line := range r.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || name != h.CookieName {
				continue
			}
			value = strings.Trim(value, `"`)
			if !seen && value == first {
				seen = true
				continue
			}
			if value != "" && value != first && len(values) < maxSessionCookies-1 {
				values = append(values, value)
			}
		}
	}
	return values
}

// identify makes the session's user known to the rest of Caddy: the
// placeholders Caddy's own authentication sets (the access log shows user_id)
// and the identity headers for an upstream.
func (h *sessions) identify(r *http.Request, sess engine.Session) {
	Identify(r, sess, new([4]string))
}

// Identify is Site.identify with the headers' values kept in into, which
// a request in flight has room for. The placeholders take the values boxed
// once per user (the method's once per method), so setting them allocates
// nothing.
func Identify(r *http.Request, sess engine.Session, into *[4]string) {
	u := sess.User()
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		repl.Set("http.auth.user.id", u.IDValue)
		repl.Set("http.auth.user.username", u.UsernameValue)
		repl.Set("http.auth.user.groups", u.GroupsValue)
		repl.Set("http.auth.user.method", sess.MethodValue())
	}
	into[0], into[1], into[2], into[3] = string(u.ID), u.Username, u.Groups, sess.Method()
	// As Header.Set would, under the canonical names, without a slice each;
	// a full slice, so that adding a value copies rather than overwrites
	// its neighbour.
	r.Header[HeaderUserID] = into[0:1:1]
	r.Header[HeaderUsername] = into[1:2:2]
	if u.Groups != "" {
		// Absent, not empty, for a user in no group: the gate deleted any
		// copy the client sent, so an upstream can trust either.
		r.Header[HeaderGroups] = into[2:3:3]
	}
	if into[3] != "" {
		// Absent for an API token, which no sign-in stands behind.
		r.Header[HeaderMethod] = into[3:4:4]
	}
}

// isUpgrade reports whether r asks to switch to another protocol on the same
// connection: a WebSocket handshake over HTTP/1.1 (Upgrade) or over HTTP/2
// (an extended CONNECT), as browsers mark it with Sec-Fetch-Mode.
func isUpgrade(r *http.Request) bool {
	return HeaderValue(r.Header, "Upgrade") != "" || r.Method == http.MethodConnect ||
		HeaderValue(r.Header, "Sec-Fetch-Mode") == "websocket"
}

// crossOriginUpgrade reports whether an upgrade comes from a page of another
// origin. A WebSocket handshake is a GET, which CrossOriginProtection lets
// through as safe, yet it opens a channel that acts with the user's cookie:
// a page on another site must not open one (cross-site WebSocket hijacking).
// Browsers always send Origin on a handshake, so a request without Origin
// or Sec-Fetch-Site is not a browser's and carries no ambient authority.
func (h *sessions) crossOriginUpgrade(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin != "" && h.trustedOrigins[origin] {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	case "":
	default:
		return true
	}
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host)
}

// HeaderValue is Header.Get for a name already canonical, as the
// constants here are: the first value, without canonicalizing the name on
// every request.
func HeaderValue(h http.Header, canonicalName string) string {
	if v := h[canonicalName]; len(v) > 0 {
		return v[0]
	}
	return ""
}
