package routes

import (
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"
)

// The session cookie: how it is read, set, cleared and kept from the site.

// sessionCookie is the cookie carrying a new session's token; it lasts as
// long as the browser session unless the caller sets MaxAge.
func (h *cookies) sessionCookie(r *http.Request, token string) *http.Cookie {
	return &http.Cookie{
		Name:     h.CookieName,
		Value:    token,
		Path:     "/",
		Domain:   h.CookieDomain,
		HttpOnly: true,
		Secure:   h.secure(r),
		SameSite: h.SameSiteMode,
	}
}

// clearCookie tells the browser to drop the session cookie.
func (h *cookies) clearCookie(r *http.Request) *http.Cookie {
	c := h.sessionCookie(r, "")
	c.MaxAge = -1
	return c
}

// dropCookie clears the session cookie from w: with cookie_domain, both
// the domain's cookie and any copy of this host only, which an older
// config without cookie_domain left and which the browser would go on
// sending beside the domain's.
func (h *cookies) dropCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, h.clearCookie(r))
	if h.CookieDomain != "" {
		c := h.clearCookie(r)
		c.Domain = ""
		http.SetCookie(w, c)
	}
}

func (h *cookies) secure(r *http.Request) bool {
	switch h.Secure {
	case "on":
		return true
	case "off":
		return false
	default:
		return r.TLS != nil
	}
}

// cookieCanBeSet refuses a login whose cookie the browser would drop: a
// __Host- or __Secure- cookie name needs HTTPS, and without this check the
// login would seem to work and then not.
func (h *cookies) cookieCanBeSet(r *http.Request) error {
	if host := hostOnly(r.Host); h.CookieDomain != "" && !request.UnderDomain(host, h.CookieDomain) {
		return refuse(ReasonSignInMisconfigured, "This site was reached as "+host+", which is not under cookie_domain "+
			h.CookieDomain+": the browser would drop the session cookie")
	}
	if h.secure(r) || !NeedsSecure(h.CookieName) {
		return nil
	}
	h.logger.Error("login over plain HTTP with a cookie name that needs HTTPS", zap.String("cookie_name", h.CookieName))
	return refuse(ReasonNeedsHttps, "The session cookie "+h.CookieName+" needs HTTPS: use https:// for this site")
}

// scopedCookieName names a cookie of the plugin's sent to some paths only,
// after the session cookie: a __Host- cookie must have Path=/, so such a
// cookie takes the __Secure- prefix instead, which keeps it to HTTPS.
func (h *cookies) scopedCookieName(suffix string) string {
	if name, ok := strings.CutPrefix(h.CookieName, "__Host-"); ok {
		return "__Secure-" + name + suffix
	}
	return h.CookieName + suffix
}

// NeedsSecure reports whether browsers accept a cookie of this name only
// with the Secure attribute.
func NeedsSecure(cookieName string) bool {
	return strings.HasPrefix(cookieName, "__Host-") || strings.HasPrefix(cookieName, "__Secure-")
}
