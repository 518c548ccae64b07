package pgsession

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/internal/routes"
	"github.com/pgsession/caddy-pgsession/store"
)

// The gate: every request that is not one of the plugin's own routes and
// not on a public path needs a live session.

// ServeHTTP gates a request on its session cookie or serves an own route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// The names are canonical, as Header.Del would make them.
	delete(r.Header, HeaderUserID)
	delete(r.Header, HeaderUsername)
	delete(r.Header, HeaderGroups)
	delete(r.Header, HeaderMethod)
	if smugglesIdentity(r) {
		return h.site.Answer(w, r, routes.Refuse(routes.ReasonSmuggledIdentity, "Identity headers may not be sent as trailers"))
	}
	// The admin token is taken out of the request at once, so no upstream
	// sees it. (Caddy's access log copied the request before any handler ran:
	// docs/operations.md says how to keep the header out of it.)
	adminToken := h.takeAdminToken(r)

	if own, err := h.site.Route(w, r, adminToken); own {
		return err
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
	sess, ref := h.site.Resolve(r, routes.Demand{From: routes.FromMemory, SameOrigin: h.guardSiteWrites, Rules: true, APITokens: true}, now)
	h.app.metrics.countGate(r, sess.Token, ref)
	if ref != nil {
		if ref.Reason() == routes.ReasonSecondFactorRequired {
			return h.site.StepUp(w, r, sess.Session)
		}
		return h.site.RefuseGated(w, r, ref)
	}
	if sess.ViaAPIToken() {
		// The token is the script's credential for this site, never the
		// upstream's to see or pass on.
		delete(r.Header, "Authorization")
	}
	h.stripSessionCookie(r)
	return h.pass(w, r, sess.Session, next)
}

// countGate counts the gate's outcome for a request in the
// gate_requests_total metric, and a session found gone on renewal in
// requests_ended_total; the forward-auth check counts its decisions here
// too (routes.Metrics.Gate).
func (m *metrics) countGate(r *http.Request, token string, ref *routes.Refusal) {
	outcome := gateAllowed
	if ref != nil {
		switch ref.Reason() {
		case routes.ReasonNotAuthenticated:
			outcome = gateNoCookie
		case routes.ReasonCrossOrigin:
			outcome = gateCrossOrigin
		case routes.ReasonForbidden:
			outcome = gateForbidden
		case routes.ReasonInvalidAPIToken:
			outcome = gateInvalidAPIToken
		case routes.ReasonThrottled:
			outcome = gateThrottled
		case routes.ReasonSecondFactorRequired:
			outcome = gateStepUp
		case routes.ReasonStoreUnavailable:
			if engine.ClientGone(r.Context(), ref.Unwrap()) {
				return
			}
			outcome = gateStoreError
		case routes.ReasonSessionExpired:
			if ref.EndedOnRenewal() {
				m.ended[endedBefore].Inc()
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
	m.gate[outcome].Inc()
}

// pass hands the request to the site, registered in flight: it ends if its
// session does, however long its response runs. If the session ends before
// the response has begun, the client gets what the session's next request
// gets (401, or the login page), and neither the site's nor Caddy's log
// takes it for an error; a response already begun is cut, as a response
// whose client went away is.
func (h *Handler) pass(w http.ResponseWriter, r *http.Request, sess engine.Session, next caddyhttp.Handler) (err error) {
	fl := h.app.inflight.Start(w, r, sess, h.privateResponses, time.Duration(h.RenewalInterval))
	routes.Identify(r, sess, fl.HeaderRoom())
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
			err = h.site.RefuseEnded(w, r)
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
var forbiddenTrailers = []string{HeaderUserID, HeaderUsername, HeaderGroups, HeaderMethod, HeaderAdminToken}

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
	token := routes.HeaderValue(r.Header, HeaderAdminToken)
	delete(r.Header, HeaderAdminToken)
	if h.adminToken == nil {
		return token
	}
	values := r.Header.Values("Authorization")
	kept := values[:0:0]
	for _, v := range values {
		if bearer, ok := routes.ParseBearer(v); ok && subtle.ConstantTimeCompare([]byte(bearer), h.adminToken) == 1 {
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
	if status != http.StatusNotModified && mayBeHTML(routes.HeaderValue(hdr, "Content-Type")) {
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
