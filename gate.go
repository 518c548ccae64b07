package pgsession

import (
	"net/http"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/store"
)

// The gate: every request that is not one of the plugin's own routes and
// not on a public path needs a live session.

// ServeHTTP gates a request on its session cookie or serves an own route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// The names are canonical, as Header.Del would make them.
	delete(r.Header, HeaderUserID)
	delete(r.Header, HeaderUsername)
	if smugglesIdentity(r) {
		return h.answer(w, r, refuse(reasonSmuggledIdentity, "Identity headers may not be sent as trailers"))
	}
	// The admin token is taken out of the request at once, so no upstream
	// sees it. (Caddy's access log copied the request before any handler ran:
	// docs/operations.md says how to keep the header out of it.)
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

	// One reading of the clock serves the look-up and the renewal.
	now := time.Now()
	sess, ref := h.resolve(r, demand{from: fromMemory, sameOrigin: h.guardSiteWrites}, now)
	h.countGate(r, sess.token, ref)
	if ref != nil {
		return h.refuseGated(w, r, ref)
	}
	h.stripSessionCookie(r)
	return h.pass(w, r, sess.Session, next)
}

// refuseGated answers a request the gate does not let through: a browser
// goes to the login page, or to set up the second factor asked of it;
// anything else gets the refusal.
func (h *Handler) refuseGated(w http.ResponseWriter, r *http.Request, ref *refusal) error {
	switch ref.reason {
	case reasonNotAuthenticated, reasonSessionExpired:
		if wantsHTML(r) {
			h.sendToLogin(w, r)
			return nil
		}
	case reasonSecondFactorEnrolmentRequired:
		return h.sendToEnrol(w, r)
	}
	return h.answer(w, r, ref)
}

// countGate counts the gate's outcome for a request in the
// gate_requests_total metric, and a session found gone on renewal in
// requests_ended_total.
func (h *Handler) countGate(r *http.Request, token string, ref *refusal) {
	outcome := gateAllowed
	if ref != nil {
		switch ref.reason {
		case reasonNotAuthenticated:
			outcome = gateNoCookie
		case reasonCrossOrigin:
			outcome = gateCrossOrigin
		case reasonStoreUnavailable:
			if clientGone(r.Context(), ref.err) {
				return
			}
			outcome = gateStoreError
		case reasonSessionExpired:
			if ref.endedOnRenewal {
				h.app.metrics.ended[endedBefore].Inc()
				break
			}
			// Only a refusal asks whether the token was well formed: a
			// session found in memory was never checked for it.
			outcome = gateExpired
			if !store.ValidToken(token) {
				outcome = gateInvalid
			}
		}
	}
	h.app.metrics.gate[outcome].Inc()
}

// pass hands the request to the site, registered in flight: it ends if its
// session does, however long its response runs. If the session ends before
// the response has begun, the client gets what the session's next request
// gets (401, or the login page), and neither the site's nor Caddy's log
// takes it for an error; a response already begun is cut, as a response
// whose client went away is.
func (h *Handler) pass(w http.ResponseWriter, r *http.Request, sess engine.Session, next caddyhttp.Handler) (err error) {
	fl := h.app.inflight.Start(w, r, sess, h.privateResponses, time.Duration(h.RenewalInterval))
	user := sess.User()
	identify(r, &user, fl.HeaderRoom())
	defer func() {
		switch h.app.inflight.Finish(fl) {
		case engine.EndedBeforeResponse:
			// reverse_proxy aborts with http.ErrAbortHandler when the
			// upstream's answer it had begun to copy is cancelled; none of
			// it reached the client, so the refusal can still be sent.
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				panic(p)
			}
			h.app.metrics.ended[endedBefore].Inc()
			err = h.refuseEnded(w, r)
		case engine.EndedDuringResponse:
			h.app.metrics.ended[endedDuring].Inc()
			if p := recover(); p != nil {
				panic(p)
			}
			// Cut, rather than ended as if complete: the client must not
			// take a truncated answer for a whole one. net/http closes the
			// connection (or resets the stream) and logs nothing.
			panic(http.ErrAbortHandler)
		}
	}()
	err = next.ServeHTTP(fl, fl.Request())
	fl.SiteDone()
	return err
}

// refuseEnded answers a request whose session ended while it was being
// served, before its response began, exactly as gate and sendToLogin answer
// the session's next request: a browser goes to the login page, anything
// else gets 401 session_expired (through handle_errors with error_pages
// caddy), and the cookie is cleared. What the site had set of a response it
// never sent goes first.
func (h *Handler) refuseEnded(w http.ResponseWriter, r *http.Request) error {
	hdr := w.Header()
	for _, name := range unsentResponseHeaders {
		delete(hdr, name)
	}
	if wantsHTML(r) {
		hdr.Set("Cache-Control", "no-store")
		http.SetCookie(w, h.clearCookie(r))
		http.Redirect(w, r, h.LoginPath+"?redirect="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return nil
	}
	return h.answer(w, r, sessionExpired())
}

// unsentResponseHeaders are the headers that describe a response, which a
// site may have set before its session ended and its response was dropped;
// the ones set before the gate (Server, Alt-Svc, the site's header
// directive) stay, as the next request gets them too.
var unsentResponseHeaders = []string{
	"Content-Type", "Content-Length", "Content-Encoding", "Content-Range", "Content-Disposition",
	"Content-Language", "Content-Location", "Transfer-Encoding", "Trailer", "Etag", "Last-Modified",
	"Accept-Ranges", "Location", "Set-Cookie", "Cache-Control", "Expires", "Vary",
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

// identify makes the session's user known to the rest of Caddy: the
// placeholders Caddy's own authentication sets (the access log shows user_id)
// and the identity headers for an upstream.
func (h *Handler) identify(r *http.Request, u *engine.User) {
	identify(r, u, new([2]string))
}

// identify is Handler.identify with the headers' values kept in into, which
// a request in flight has room for. The placeholders take the values boxed
// once per user, so setting them allocates nothing.
func identify(r *http.Request, u *engine.User, into *[2]string) {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		repl.Set("http.auth.user.id", u.IDValue)
		repl.Set("http.auth.user.username", u.UsernameValue)
	}
	into[0], into[1] = string(u.ID), u.Username
	// As Header.Set would, under the canonical names, without a slice each;
	// a full slice, so that adding a value copies rather than overwrites
	// its neighbour.
	r.Header[HeaderUserID] = into[0:1:1]
	r.Header[HeaderUsername] = into[1:2:2]
}
