package pgsession

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/store"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The one way a request becomes a session, or a refusal saying why it has
// none: the gate and every own route ask here, so a rule about sessions
// (who may pass, when a session ends) is written once.

// DefaultCacheSize is how many sessions a server keeps in memory unless
// cache_size says otherwise: a few megabytes.
const DefaultCacheSize = 10_000

// source says where a request's session is looked up.
type source int

const (
	// fromMemory answers from memory while memory is known to be up to
	// date, and from the database otherwise: the gate.
	fromMemory source = iota
	// fromDatabase reads the session's row: the own routes, which change
	// sessions and must not act on a memory of one, and need the row.
	fromDatabase
)

// demand is what a request asks of its session.
type demand struct {
	from source
	// sameOrigin refuses a request that acts with the cookie from
	// another site (the gate's guard of the site's writes).
	sameOrigin bool
	// admin asks for an admin's session.
	admin bool
	// beforeSecondFactor lets a user whom second_factor required asks to
	// set one up through: the routes that set one up.
	beforeSecondFactor bool
}

// resolved is a request's live session, once resolve found it. token is
// the cookie's value whenever the request had one, even when refused.
type resolved struct {
	engine.Session
	row   *store.Session // the row, with fromDatabase
	token string
}

// resolve finds the live session of r's cookie and checks it against d,
// renewing it when due. now is when the request came. The refusals it
// gives: not_authenticated (no cookie), cross_origin, store_unavailable,
// session_expired (the cookie names no live session; the cookie is
// cleared), second_factor_enrolment_required and not_admin.
func (h *Handler) resolve(r *http.Request, d demand, now time.Time) (resolved, *refusal) {
	token, hadCookie := h.token(r)
	if !hadCookie {
		return resolved{}, notAuthenticated()
	}
	res := resolved{token: token}
	// A cookie makes every request from the browser carry the user's
	// authority, so a cross-site form, fetch or WebSocket must not reach
	// the site.
	if d.sameOrigin {
		if err := h.originGuard.Check(r); err != nil || isUpgrade(r) && h.crossOriginUpgrade(r) {
			return res, refuse(reasonCrossOrigin, "Cross-origin request refused")
		}
	}
	var err error
	switch d.from {
	case fromMemory:
		res.Session, err = h.app.session(r.Context(), token, now)
	case fromDatabase:
		res.row, err = h.store.GetSession(r.Context(), token)
		if err == nil {
			h.app.health.ok()
			if res.row != nil {
				res.Session = engine.FromStore(res.row, now)
			}
		}
	}
	if err != nil {
		return res, storeUnavailable(err)
	}
	if res.IsZero() {
		return res, sessionExpired()
	}
	user := res.User()
	if h.requireSecondFactor && !user.SecondFactor && !d.beforeSecondFactor {
		return res, enrolmentRequired()
	}
	if d.admin && !user.IsAdmin {
		return res, refuse(reasonNotAdmin, "Admin access required")
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

// sessionRow is the row of r's live session, for a route that serves a
// visitor without a session too (nil, nil): the login, logout and account
// pages. An error is the database's, as a refusal.
func (h *Handler) sessionRow(r *http.Request) (*store.Session, error) {
	res, ref := h.resolve(r, demand{from: fromDatabase, beforeSecondFactor: true}, time.Now())
	switch {
	case ref == nil:
		return res.row, nil
	case ref.reason == reasonStoreUnavailable:
		return nil, ref
	default:
		return nil, nil
	}
}

// notAuthenticated refuses a request without a session cookie.
func notAuthenticated() *refusal {
	return refuse(reasonNotAuthenticated, "Not authenticated")
}

// sessionExpired refuses a request whose cookie names no live session, and
// drops the cookie.
func sessionExpired() *refusal {
	ref := refuse(reasonSessionExpired, "Session expired")
	ref.clearCookie = true
	return ref
}

// session returns the live session of token: from memory while memory is
// known to be up to date, else from the database, and from memory again
// during an outage for a session confirmed within offline_grace. A missing
// or expired session is (nil, nil); an error means the database could not
// answer (and was counted as such, unless the client went away). Each
// look-up of a well-formed token that got an answer counts once in
// cache_lookups_total: a hit, a miss, or offline_grace. now is when the
// request came.
func (a *App) session(ctx context.Context, token string, now time.Time) (engine.Session, error) {
	if len(token) != store.TokenLength {
		return engine.Session{}, nil
	}
	// Memory holds only sessions of well-formed tokens, so a hit needs no
	// check of the token's shape; a miss does, before any query.
	key := engine.KeyOfRequest(ctx, token)
	if a.cache.Trusted(now) {
		if s, ok := a.cache.Get(key); ok && s.Live(now) {
			a.metrics.cache[cacheHit].Inc()
			return s, nil
		}
	}
	if !store.ValidToken(token) {
		return engine.Session{}, nil
	}
	if a.health.recentlyFailed(now) {
		if s, ok := a.cache.GraceFor(key, now); ok {
			a.metrics.cache[cacheOfflineGrace].Inc()
			a.health.servedFromMemory()
			return s, nil
		}
	}
	epoch := a.cache.Epoch()
	started := now
	row, found, err := a.lookups.Look(ctx, key, func(ctx context.Context) (store.LiveSession, bool, error) {
		lookCtx, cancel := context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
		return a.store.CheckSession(lookCtx, store.HashToken(token))
	})
	now = time.Now()
	if err != nil {
		if clientGone(ctx, err) {
			return engine.Session{}, err
		}
		if s, ok := a.cache.GraceFor(key, now); ok {
			a.metrics.cache[cacheOfflineGrace].Inc()
			a.health.failed(err, true)
			return s, nil
		}
		// The 503 this becomes is recorded as one refusal where it is written (Handler.answer).
		a.metrics.cache[cacheMiss].Inc()
		return engine.Session{}, err
	}
	a.health.ok()
	a.metrics.cache[cacheMiss].Inc()
	a.cache.Reached(started)
	if !found {
		a.cache.Forget(key)
		return engine.Session{}, nil
	}
	s := engine.FromLive(key, row, now)
	a.cache.Put(s, epoch)
	return s, nil
}

// renew records the session's use, at most once per renewal interval, so
// an idle timeout counts from the last use without a write per request. It
// returns false when the write finds the session gone, which nothing
// announced (a DELETE with the triggers off, as pg_restore
// --disable-triggers and logical replication make): the session then ends
// on this server at once. A failure is logged and the request goes on: the
// session is still valid. now is when the request came.
func (h *Handler) renew(r *http.Request, sess engine.Session, now time.Time) bool {
	if now.Sub(sess.LastSeen()) < time.Duration(h.RenewalInterval) {
		return true
	}
	if _, busy := h.renewing.LoadOrStore(sess.Key(), struct{}{}); busy {
		return true
	}
	defer h.renewing.Delete(sess.Key())
	epoch := h.app.cache.Epoch()
	touch, err := h.store.TouchSession(r.Context(), sess.ID(), time.Duration(h.RenewalInterval))
	if err != nil {
		if c := h.logger.Check(zapcore.WarnLevel, "renewing session"); c != nil {
			c.Write(zap.Error(err))
		}
		return true
	}
	h.app.renewed(sess, now, touch, epoch)
	return touch != store.SessionGone
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
