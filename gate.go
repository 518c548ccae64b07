package pgsession

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

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

// stripSessionCookie removes the plugin's own cookie from the Cookie header,
// keeping every other cookie as sent: the site has no use for the token, and
// an upstream's logs or a compromised upstream could replay it.
func (h *Handler) stripSessionCookie(r *http.Request) {
	lines := r.Header["Cookie"]
	prefix := h.CookieName + "="
	changed := false
	kept := lines[:0:0]
	for _, line := range lines {
		if !strings.Contains(line, prefix) {
			kept = append(kept, line)
			continue
		}
		var parts []string
		for part := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if name == h.CookieName {
				changed = true
				continue
			}
			if p := strings.TrimSpace(part); p != "" {
				parts = append(parts, p)
			}
		}
		if len(parts) > 0 {
			kept = append(kept, strings.Join(parts, "; "))
		}
	}
	if !changed {
		return
	}
	if len(kept) == 0 {
		r.Header.Del("Cookie")
		return
	}
	r.Header["Cookie"] = kept
}

// What the gate does to a request before the site sees it, and to the
// site's response on its way back, so that neither the session token nor
// what it protects leaks past the gate.

// forbiddenTrailers are the headers the gate vouches for or consumes; a
// client that declares them as trailers could have an upstream read its own
// values next to the real ones, so such a request is refused.
var forbiddenTrailers = []string{HeaderUserID, HeaderUsername, HeaderAdminToken}

// smugglesIdentity reports whether r declares an identity header as a trailer.
func smugglesIdentity(r *http.Request) bool {
	for name := range r.Trailer {
		for _, forbidden := range forbiddenTrailers {
			if strings.EqualFold(name, forbidden) {
				return true
			}
		}
	}
	return false
}

// takeAdminToken removes the admin token from r, from X-Admin-Token and
// from an Authorization header that carries it as a bearer token, and
// returns it ("" when absent). Any other Authorization header is the site's
// own business and passes through untouched.
func (h *Handler) takeAdminToken(r *http.Request) string {
	token := headerValue(r.Header, HeaderAdminToken)
	delete(r.Header, HeaderAdminToken)
	if h.adminToken == nil {
		return token
	}
	values := r.Header.Values("Authorization")
	kept := values[:0:0]
	for _, v := range values {
		if bearer, ok := parseBearer(v); ok && subtle.ConstantTimeCompare([]byte(bearer), h.adminToken) == 1 {
			if token == "" {
				token = bearer
			}
			continue
		}
		kept = append(kept, v)
	}
	if len(kept) != len(values) {
		if len(kept) == 0 {
			r.Header.Del("Authorization")
		} else {
			r.Header["Authorization"] = kept
		}
	}
	return token
}

// isUpgrade reports whether r asks to switch to another protocol on the same
// connection: a WebSocket handshake over HTTP/1.1 (Upgrade) or over HTTP/2
// (an extended CONNECT), as browsers mark it with Sec-Fetch-Mode.
func isUpgrade(r *http.Request) bool {
	return headerValue(r.Header, "Upgrade") != "" || r.Method == http.MethodConnect ||
		headerValue(r.Header, "Sec-Fetch-Mode") == "websocket"
}

// crossOriginUpgrade reports whether an upgrade comes from a page of another
// origin. A WebSocket handshake is a GET, which CrossOriginProtection lets
// through as safe, yet it opens a channel that acts with the user's cookie:
// a page on another site must not open one (cross-site WebSocket hijacking).
// Browsers always send Origin on a handshake, so a request without Origin
// or Sec-Fetch-Site is not a browser's and carries no ambient authority.
func (h *Handler) crossOriginUpgrade(r *http.Request) bool {
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

// privateResponse keeps a response the gate let through out of shared
// caches, and a protected page out of the browser's cache, so neither a CDN
// nor the back button after logout shows it to someone else: HTML gets
// "no-store"; anything else keeps the site's directives but "public" and
// "s-maxage", and gains "private" (with "no-cache" when the site said
// nothing, so a static file is revalidated, cheaply with a 304, through the
// gate rather than downloaded again). The response writer of a request in
// flight applies it just before the headers are sent, whichever way the site
// sends them; the common cases' value is kept in into, which the request
// has room for.
func privateResponse(hdr http.Header, status int, into *[1]string) {
	if status != http.StatusNotModified && mayBeHTML(headerValue(hdr, "Content-Type")) {
		into[0] = "no-store"
		hdr["Cache-Control"] = into[:]
		return
	}
	values := hdr.Values("Cache-Control")
	if len(values) == 0 {
		// The common case, a static file, without the work below.
		into[0] = "private, no-cache"
		hdr["Cache-Control"] = into[:]
		return
	}
	var kept []string
	private, noStore := false, false
	for _, v := range values {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.TrimSpace(d)
			name, _, _ := strings.Cut(d, "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "":
				continue
			case "public", "s-maxage":
				continue
			case "private":
				private = private || !strings.Contains(d, "=")
			case "no-store":
				noStore = true
			}
			kept = append(kept, d)
		}
	}
	switch {
	case len(kept) == 0:
		kept = []string{"private", "no-cache"}
	case !private && !noStore:
		kept = append([]string{"private"}, kept...)
	}
	hdr.Set("Cache-Control", strings.Join(kept, ", "))
}

// mayBeHTML reports whether a response of this Content-Type may be rendered
// as a page: HTML, or no type or a malformed one, for which browsers sniff
// the body, which may turn out to be HTML. It reads the media type by hand,
// as it runs on every gated response.
func mayBeHTML(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	mediaType = strings.TrimSpace(mediaType)
	kind, sub, ok := strings.Cut(mediaType, "/")
	if !ok || !isToken(kind) || !isToken(sub) {
		return true
	}
	return strings.EqualFold(mediaType, "text/html") || strings.EqualFold(mediaType, "application/xhtml+xml")
}

// isToken reports whether s is an HTTP token (RFC 9110), as a media type's
// parts must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

// tokenByte says which bytes an HTTP token may hold, looked up rather than
// searched for, since every response passed on asks.
var tokenByte = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	}
	return t
}()

// headerValue is Header.Get for a name already canonical, as the
// constants here are: the first value, without canonicalizing the name on
// every request.
func headerValue(h http.Header, canonicalName string) string {
	if v := h[canonicalName]; len(v) > 0 {
		return v[0]
	}
	return ""
}
