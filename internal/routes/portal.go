package routes

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/web"
)

// Single sign-on across subdomains: with cookie_domain, the session cookie
// reaches every site under the domain, and with login_url the sites send
// a browser without a session to one portal, which signs it in once and
// sends it back. Redirect loops are ruled out here, by construction: a
// site that the cookie cannot reach, or reaches only over HTTPS while the
// site is plain HTTP, says so on a page instead of sending the browser to
// the portal; the portal is the site whose host login_url names, so a
// snippet with login_url serves the portal too; and a portal asked twice
// within a few seconds to send a signed-in browser back to the same page,
// which did not get the cookie, says so instead of sending it again.

// loopWindow is how soon a second request to send a signed-in browser back
// to the same page counts as a loop.
const loopWindow = 20 * time.Second

// requestScheme is the scheme the client used: https over TLS, or behind
// a proxy Caddy trusts that says so.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted &&
		strings.EqualFold(HeaderValue(r.Header, "X-Forwarded-Proto"), "https") {
		return "https"
	}
	return "http"
}

// safeReturn is where a browser may be sent after signing in: target when
// it is a path on this site, or, on a portal, an address on the cookie
// domain or a trusted origin (request.Returns); anything else goes home.
func (h *base) safeReturn(r *http.Request, target string) string {
	if p := request.SafeRedirect(target); p == target {
		return p
	}
	if h.CookieDomain != "" || len(h.TrustedOrigins) > 0 {
		rr := request.Returns{Domain: h.CookieDomain, Origins: h.TrustedOrigins, Scheme: requestScheme(r)}
		if rr.Allows(target) {
			return target
		}
	}
	return h.Home
}

// servesPortal reports whether r came to the portal that login_url names,
// or there is no portal: this site signs the browser in itself.
func (h *base) servesPortal(r *http.Request) bool {
	return h.LoginURL == nil || sameHostPort(r.Host, h.LoginURL.Host, requestScheme(r))
}

// sameHostPort compares a request's Host with a URL's host, reading a
// missing port as the scheme's default.
func sameHostPort(reqHost, urlHost, scheme string) bool {
	port := map[string]string{"http": ":80", "https": ":443"}[scheme]
	withPort := func(h string) string {
		h = strings.ToLower(h)
		if i := strings.LastIndexByte(h, ':'); i < 0 || strings.HasSuffix(h, "]") {
			return h + port
		}
		return h
	}
	return withPort(reqHost) == withPort(urlHost)
}

// signInURL is the login page to send a browser to, which sends it on to
// target (a path on this site, or an absolute address) once signed in: the
// site's own login page, or the portal's with target made absolute.
func (h *responder) signInURL(r *http.Request, target string) string {
	if h.servesPortal(r) {
		return h.loginLink(target)
	}
	if strings.HasPrefix(target, "/") {
		target = requestScheme(r) + "://" + r.Host + target
	}
	return h.LoginURL.String() + "?redirect=" + url.QueryEscape(target)
}

// portalProblem says why this site cannot send a browser to its portal
// and get it back signed in, or "" when it can: then a redirect would come
// back at once, without the cookie, and go again, for ever.
func (h *responder) portalProblem(r *http.Request) string {
	host := hostOnly(r.Host)
	switch {
	case h.CookieDomain != "" && !request.UnderDomain(host, h.CookieDomain):
		return "This site was reached as " + host + ", which is not under cookie_domain " + h.CookieDomain +
			": the session cookie never reaches it. Serve the site under " + h.CookieDomain + ", or change cookie_domain."
	case h.LoginURL == nil:
		return ""
	case h.servesPortal(r) && h.LoginURL.Path != h.LoginPath:
		return "login_url " + h.LoginURL.String() + " names this site, whose login page is " + h.LoginPath +
			": set login_path " + h.LoginURL.Path + ", or point login_url at " + h.LoginPath + "."
	case !h.servesPortal(r) && h.LoginURL.Scheme == "https" && requestScheme(r) == "http" && h.Secure != "off":
		return "This site is served over plain HTTP, but signs in at " + h.LoginURL.String() +
			", whose session cookie is Secure and never reaches a plain HTTP page. Serve the site over HTTPS."
	}
	return ""
}

// trustworthy reports whether r came from what browsers count as a secure
// origin: HTTPS, or a loopback host.
func trustworthy(r *http.Request) bool {
	if requestScheme(r) == "https" {
		return true
	}
	host := strings.Trim(hostOnly(r.Host), "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hostOnly is a Host header's host, without its port.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// misconfigured answers a browser that a redirect would only send round
// in a loop, with what is wrong, for the operator to fix.
func (h *responder) misconfigured(w http.ResponseWriter, r *http.Request, problem string) error {
	h.logger.Error("single sign-on is misconfigured: " + problem)
	return h.renderMessage(w, r, ReasonStatus[ReasonSignInMisconfigured], web.MessagePage{
		Status:  ReasonStatus[ReasonSignInMisconfigured],
		Heading: "Sign-in is misconfigured",
		Message: problem,
		Links:   []web.Link{h.homeLink()},
	})
}

// toPortal answers this site's own login page, which is not the portal's:
// the portal signs browsers in, for every site under the domain, and ends
// a sign-out begun here (signedOut), since the cookie it clears is the
// domain's.
func (h *responder) toPortal(w http.ResponseWriter, r *http.Request, redirect string) error {
	target := h.signInURL(r, h.safeReturn(r, redirect))
	if r.URL.Query().Get("done") == doneSignedOut {
		target += "&done=" + doneSignedOut
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}

// loopCookieName marks, on the portal, the last page it sent a signed-in
// browser back to.
func (h *responder) loopCookieName() string { return h.scopedCookieName("_return") }

// sendBack sends a signed-in browser from the portal's login page on to
// target, unless it was sent there moments ago: then the site did not get
// the session, and the browser would only come back again.
func (h *signInRoutes) sendBack(w http.ResponseWriter, r *http.Request, target string) error {
	sum := sha256.Sum256([]byte(target))
	mark := hex.EncodeToString(sum[:8])
	if !strings.HasPrefix(target, "/") {
		if c, err := r.Cookie(h.loopCookieName()); err == nil && c.Value == mark {
			u, _ := url.Parse(target)
			return h.misconfigured(w, r, "You are signed in, but "+u.Host+" did not receive the sign-in, and sent you back here. "+
				"Its pg_session block needs cookie_domain "+h.CookieDomain+" and the same cookie_name, and a plain HTTP "+
				"site cannot receive a Secure cookie.")
		}
		http.SetCookie(w, &http.Cookie{Name: h.loopCookieName(), Value: mark, Path: h.LoginPath,
			MaxAge: int(loopWindow / time.Second), HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}

// portalOrigin is the origin that signs browsers in: login_url's, or this
// site's own, made absolute: for the forward-auth check, whose browser is on
// the proxy's host, and for a mailed link, which opens outside any page.
func (c *Config) portalOrigin(r *http.Request) string {
	if c.LoginURL != nil {
		return c.LoginURL.Scheme + "://" + c.LoginURL.Host
	}
	return requestScheme(r) + "://" + strings.ToLower(r.Host)
}
