package pgsession

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
)

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
