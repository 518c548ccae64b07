package pgsession

import (
	"net/http"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgsession/caddy-pgsession/store"
)

// The gate: every request that is not one of the plugin's own routes and
// not on a public path needs a live session.

// ServeHTTP gates a request on its session cookie or serves an own route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r.Header.Del(HeaderUserID)
	r.Header.Del(HeaderUsername)
	if smugglesIdentity(r) {
		return h.answer(w, r, refuse(http.StatusBadRequest, "smuggled_identity", "Identity headers may not be sent as trailers"))
	}
	// The admin token is taken out of the request at once, so no upstream
	// sees it. (Caddy's access log copied the request before any handler ran:
	// see the README for keeping the header out of it.)
	adminToken := h.takeAdminToken(r)

	if rte, params, allowed := h.router.match(r); rte != nil || allowed != nil {
		return h.answer(w, r, h.serveRoute(w, r, rte, params, allowed, adminToken))
	}
	if len(h.Public) > 0 {
		public, err := h.public.match(r)
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

	sess, err := h.gate(r)
	if err != nil || sess == nil {
		if err == nil && wantsHTML(r) {
			h.sendToLogin(w, r)
			return nil
		}
		return h.answer(w, r, err)
	}
	user := sess.user.Value()
	if h.requireSecondFactor && !user.secondFactor {
		return h.sendToEnrol(w, r)
	}
	h.identify(r, &user)
	h.renew(r, sess)
	h.stripSessionCookie(r)
	if h.privateResponses {
		w = newPrivateWriter(w)
	}
	// The request ends if its session does, however long its response runs.
	fl := h.app.inflight.start(r, sess)
	defer h.app.inflight.finish(fl)
	return next.ServeHTTP(w, fl.request)
}

// gate returns the live session of the request, or why it has none: nil
// and nil for a browser to send to the login page. It counts each outcome
// in the gate_requests_total metric.
func (h *Handler) gate(r *http.Request) (*cachedSession, error) {
	count := &h.app.metrics.gate
	token, hadCookie := h.token(r)
	if !hadCookie {
		count[gateNoCookie].Inc()
		if wantsHTML(r) {
			return nil, nil
		}
		return nil, refuse(http.StatusUnauthorized, "not_authenticated", "Not authenticated")
	}
	// A cookie makes every request from the browser carry the user's
	// authority, so a cross-site form, fetch or WebSocket must not reach
	// the site.
	if h.guardSiteWrites {
		if err := h.originGuard.Check(r); err != nil || isUpgrade(r) && h.crossOriginUpgrade(r) {
			count[gateCrossOrigin].Inc()
			return nil, refuse(http.StatusForbidden, "cross_origin", "Cross-origin request refused")
		}
	}
	sess, err := h.app.session(r.Context(), token)
	if err != nil {
		if !clientGone(r.Context(), err) {
			count[gateStoreError].Inc()
		}
		return nil, storeUnavailable(err)
	}
	if sess == nil {
		// Only a refusal asks whether the token was well formed: a session
		// found in memory was never checked for it.
		if store.ValidToken(token) {
			count[gateExpired].Inc()
		} else {
			count[gateInvalid].Inc()
		}
		ref := refuse(http.StatusUnauthorized, "session_expired", "Session expired")
		ref.clearCookie = true
		if wantsHTML(r) {
			return nil, nil
		}
		return nil, ref
	}
	count[gateAllowed].Inc()
	return sess, nil
}

// sendToLogin redirects a browser without a live session to the login page,
// dropping a stale cookie on the way.
func (h *Handler) sendToLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if _, hadCookie := h.token(r); hadCookie {
		http.SetCookie(w, h.clearCookie(r))
	}
	http.Redirect(w, r, h.LoginPath+"?redirect="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// renew records the session's use, at most once per renewal interval, so
// an idle timeout counts from the last use without a write per request.
// A failure is logged and the request goes on: the session is still valid.
func (h *Handler) renew(r *http.Request, sess *cachedSession) {
	now := time.Now()
	if now.UnixNano()-sess.lastSeen < int64(h.RenewalInterval) {
		return
	}
	if _, busy := h.renewing.LoadOrStore(sess.key, struct{}{}); busy {
		return
	}
	defer h.renewing.Delete(sess.key)
	wrote, err := h.store.TouchSession(r.Context(), sess.id(), time.Duration(h.RenewalInterval))
	if err != nil {
		if c := h.logger.Check(zapcore.WarnLevel, "renewing session"); c != nil {
			c.Write(zap.Error(err))
		}
		return
	}
	h.app.renewed(sess, now, wrote)
}

// identify makes the session's user known to the rest of Caddy: the
// placeholders Caddy's own authentication sets (the access log shows user_id)
// and the identity headers for an upstream. The placeholders take the values
// boxed once per user, and both headers share one allocation.
func (h *Handler) identify(r *http.Request, u *sessionUser) {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		repl.Set("http.auth.user.id", u.idValue)
		repl.Set("http.auth.user.username", u.nameValue)
	}
	values := []string{string(u.id), u.username}
	r.Header[HeaderUserID] = values[0:1:1]
	r.Header[HeaderUsername] = values[1:2:2]
}
