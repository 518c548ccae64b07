package routes

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pgsession/caddy-pgsession/internal/request"
)

// Forward authentication, for a proxy that cannot load the plugin (nginx's
// auth_request, Traefik's forwardAuth, another Caddy's forward_auth): the
// proxy asks GET {api_path}/verify about each request it serves, with the
// request's cookie and what it was for, and lets it through on a 2xx. The
// decision is the gate's, from the same memory at the same cost: the
// session, the site's access rules on the forwarded method and path, the
// second factor they ask for. The identity comes back as response headers
// for the proxy to copy to its upstream.

// verifyRoutes answer the forward-auth check: they read sessions and
// answer; the one cookie they touch is a dead session's, dropped as the
// gate drops it.
type verifyRoutes struct {
	base
	*cookies
	*responder
	*sessions
	// counted counts each decision as the gate's are counted; nil counts
	// nothing.
	counted func(r *http.Request, token string, ref *Refusal)
}

// forNginx is the value of the query parameter for that asks for nginx's
// answers: nginx's auth_request passes on 2xx, 401 and 403 only, so a
// browser's redirect comes as 401 with Location, for error_page to follow.
const forNginx = "nginx"

// serveVerify answers whether the request the proxy forwards may pass:
// GET {api}/verify. 200 with the identity headers, no body; a browser
// without a session is sent to sign in (or, with for=nginx, told where in
// a 401's Location) and comes back to the address it asked for; anything
// else gets the refusal the gate would give.
func (h *verifyRoutes) serveVerify(w http.ResponseWriter, r *http.Request, _ *caller) error {
	nginx, err := verifyMode(r)
	if err != nil {
		return err
	}
	fr, abs, ref := forwardedRequest(r)
	if ref != nil {
		return ref
	}

	res, ref := h.Resolve(fr, Demand{From: FromMemory, SameOrigin: true, Rules: true, APITokens: true}, time.Now())
	if h.counted != nil {
		h.counted(fr, res.Token, ref)
	}
	if ref == nil {
		var into [4]string
		Identify(r, res.Session, &into)
		hdr := w.Header()
		hdr[HeaderUserID], hdr[HeaderUsername] = []string{into[0]}, []string{into[1]}
		delete(hdr, HeaderGroups)
		delete(hdr, HeaderMethod)
		if into[2] != "" {
			hdr[HeaderGroups] = []string{into[2]}
		}
		if into[3] != "" {
			hdr[HeaderMethod] = []string{into[3]}
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if ref.reason == ReasonSecondFactorRequired {
		// As the gate's StepUp: a user with no second factor to give is
		// asked to set one up first.
		if !res.User().SecondFactor {
			ref = enrolmentRequired()
		} else if !prefersHTML(fr) {
			ref = refuse(ReasonSecondFactorRequired,
				"This path needs a second factor: sign in again with it or step up at POST "+h.APIPath+"/step-up")
		}
	}
	if !prefersHTML(fr) {
		return ref
	}
	if host := hostOnly(fr.Host); h.CookieDomain != "" && !request.UnderDomain(host, h.CookieDomain) {
		// The portal's cookie never reaches that host: signing in could
		// not bring the browser back signed in, as the gate's
		// portalProblem says.
		mis := refuse(ReasonSignInMisconfigured, "This site was reached as "+host+", which is not under cookie_domain "+
			h.CookieDomain+": the session cookie never reaches it")
		if nginx {
			mis.status = http.StatusForbidden
		}
		return mis
	}
	switch ref.reason {
	case ReasonNotAuthenticated, ReasonSessionExpired:
		return h.sendOn(w, r, nginx, ref, h.portalLogin(r)+"?redirect="+url.QueryEscape(abs))
	case ReasonSecondFactorRequired:
		return h.sendOn(w, r, nginx, ref, h.portalLogin(r)+"/step-up?redirect="+url.QueryEscape(abs))
	case ReasonSecondFactorEnrolmentRequired:
		return h.sendOn(w, r, nginx, ref, h.portalOrigin(r)+h.AccountPath+"#two-step")
	}
	return ref
}

// verifyMode reads the query parameter for: "" or nginx.
func verifyMode(r *http.Request) (nginx bool, err error) {
	q, perr := url.ParseQuery(r.URL.RawQuery)
	if perr != nil {
		return false, refuse(ReasonBadRequest, "The query string cannot be read: separate parameters with & and escape the rest")
	}
	switch v := q["for"]; {
	case len(v) == 0:
		return false, nil
	case len(v) == 1 && v[0] == forNginx:
		return true, nil
	}
	return false, refuse(ReasonBadRequest, "The parameter for takes one value, nginx, or is left out")
}

// sendOn sends a browser on to the portal's page at to: with 303, or for
// nginx with 401 and Location, which its error_page turns into the
// redirect. The refusal's cookie is dropped on the way, as the gate does.
func (h *verifyRoutes) sendOn(w http.ResponseWriter, r *http.Request, nginx bool, ref *Refusal, to string) error {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if ref.clearCookie {
		h.dropCookie(w, r)
	}
	if !nginx {
		http.Redirect(w, r, to, http.StatusSeeOther)
		return nil
	}
	hdr.Set("Location", to)
	writeJSONError(w, http.StatusUnauthorized, ref.message)
	return nil
}

// portalLogin is the absolute address of the login page that signs
// browsers in: login_url, or this site's own login_path.
func (h *verifyRoutes) portalLogin(r *http.Request) string {
	if h.LoginURL != nil {
		return h.portalOrigin(r) + h.LoginURL.EscapedPath()
	}
	return h.portalOrigin(r) + h.LoginPath
}

// forwardedRequest is the request the proxy asks about: a shallow copy of
// r, with its headers and context, and the method, host and URI the proxy
// forwarded, or r's own when Caddy does not trust the client as a proxy,
// since anyone can send those headers. abs is its absolute address, to come
// back to after signing in. A value that is not strictly what a proxy
// sends is refused with 400, whatever would read it next.
func forwardedRequest(r *http.Request) (fr *http.Request, abs string, ref *Refusal) {
	method, host, uri, scheme := r.Method, r.Host, r.URL.RequestURI(), requestScheme(r)
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if method, host, uri, scheme, ref = forwardedParts(r); ref != nil {
			return nil, "", ref
		}
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return nil, "", refuse(ReasonBadRequest, "X-Forwarded-Proto must be http or https")
	}
	if !validHost(host) {
		return nil, "", refuse(ReasonBadRequest, "The forwarded host must be a host name or address, with an optional port")
	}
	u, ok := parseURI(uri)
	if !ok {
		return nil, "", refuse(ReasonBadRequest, "The forwarded URI must be a path starting with a single /, with an optional query")
	}
	host = strings.ToLower(host)
	c := *r
	c.Method, c.Host, c.URL, c.RequestURI = method, host, u, uri
	return &c, scheme + "://" + host + uri, nil
}

// forwardedParts reads what a trusted proxy says of the request it asks
// about, from one source, so that two headers never describe two
// requests: X-Forwarded-Uri with X-Forwarded-Host and -Proto (Caddy,
// Traefik), or else X-Original-URL (nginx), or else the request itself
// (on the host X-Forwarded-Host names). The method is X-Forwarded-Method,
// GET without it.
func forwardedParts(r *http.Request) (method, host, uri, scheme string, ref *Refusal) {
	once := func(name, def string) string {
		v, ok := oneHeader(r, name, def)
		if !ok && ref == nil {
			ref = refuse(ReasonBadRequest, name+" must be given once")
		}
		return v
	}
	method = once("X-Forwarded-Method", http.MethodGet)
	uri = once("X-Forwarded-Uri", "")
	original := once("X-Original-URL", "")
	switch {
	case ref != nil:
	case uri != "" || original == "":
		own := "http"
		if r.TLS != nil {
			own = "https"
		}
		scheme = once("X-Forwarded-Proto", own)
		host = once("X-Forwarded-Host", r.Host)
		if uri == "" {
			uri = r.URL.RequestURI()
		}
	default:
		var ok bool
		if scheme, host, uri, ok = splitAbsolute(original); !ok {
			ref = refuse(ReasonBadRequest, "X-Original-URL must be an absolute http or https address")
		}
	}
	if ref == nil && uri != "" && original != "" {
		// A proxy that sets one of them passes the client's copy of the
		// other on: which one it meant cannot be told.
		if _, _, ouri, ok := splitAbsolute(original); !ok || ouri != uri {
			ref = refuse(ReasonBadRequest, "X-Forwarded-Uri and X-Original-URL name different requests: the proxy must set both, or neither")
		}
	}
	if ref == nil && !validMethod(method) {
		ref = refuse(ReasonBadRequest, "X-Forwarded-Method must be a request method")
	}
	return method, host, uri, scheme, ref
}

// oneHeader is the value of the header name, or def when it is absent or
// empty; false when the header is given more than once, which would leave
// it to the reader which one counts.
func oneHeader(r *http.Request, name, def string) (string, bool) {
	switch v := r.Header.Values(name); len(v) {
	case 0:
		return def, true
	case 1:
		if v[0] == "" {
			return def, true
		}
		return v[0], true
	}
	return "", false
}

// splitAbsolute reads an absolute address, as nginx's
// $scheme://$http_host$request_uri makes one, into its scheme, host and
// request URI, checked as the forwarded headers are. The authority is what
// lies between "//" and the path, read by hand, so that no parser can see
// another host in it (user info is refused with the rest).
func splitAbsolute(s string) (scheme, host, uri string, ok bool) {
	for _, sc := range []string{"https", "http"} {
		if len(s) > len(sc)+3 && strings.EqualFold(s[:len(sc)+3], sc+"://") {
			scheme, s = sc, s[len(sc)+3:]
			break
		}
	}
	if scheme == "" {
		return "", "", "", false
	}
	host, uri = s, "/"
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		host, uri = s[:i], s[i:]
	}
	if !strings.HasPrefix(uri, "/") {
		return "", "", "", false
	}
	return scheme, host, uri, true
}

// validMethod reports whether m is a request method: an HTTP token.
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validHost reports whether h is a host as a proxy forwards it: a name or
// an address, with an optional port, of letters, digits and . - : [ ].
func validHost(h string) bool {
	if h == "" || len(h) > 261 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-:[]", c) >= 0) {
			return false
		}
	}
	return true
}

// parseURI reads a forwarded request URI: a path starting with one "/"
// (a browser reads "//" and "/\" as another host), an optional query, no
// fragment, and nothing a request line could not carry.
func parseURI(uri string) (*url.URL, bool) {
	if uri == "" || uri[0] != '/' || len(uri) > 8192 || len(uri) > 1 && (uri[1] == '/' || uri[1] == '\\') {
		return nil, false
	}
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c <= ' ' || c == 0x7f || c == '#' {
			return nil, false
		}
	}
	u, err := url.ParseRequestURI(uri)
	return u, err == nil
}
