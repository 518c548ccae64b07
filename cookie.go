package pgsession

import (
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// The session cookie: how it is read, set, cleared and kept from the site.

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

// tokenValue returns the session cookie's value, or "".
func (h *Handler) tokenValue(r *http.Request) string {
	t, _ := h.token(r)
	return t
}

// sessionCookie is the cookie carrying a new session's token; it lasts as
// long as the browser session unless the caller sets MaxAge.
func (h *Handler) sessionCookie(r *http.Request, token string) *http.Cookie {
	return &http.Cookie{
		Name:     h.CookieName,
		Value:    token,
		Path:     "/",
		HttpOnly: true,
		Secure:   h.secure(r),
		SameSite: h.sameSite,
	}
}

// clearCookie tells the browser to drop the session cookie.
func (h *Handler) clearCookie(r *http.Request) *http.Cookie {
	c := h.sessionCookie(r, "")
	c.MaxAge = -1
	return c
}

func (h *Handler) secure(r *http.Request) bool {
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
func (h *Handler) cookieCanBeSet(r *http.Request) error {
	if h.secure(r) || !needsSecure(h.CookieName) {
		return nil
	}
	h.logger.Error("login over plain HTTP with a cookie name that needs HTTPS", zap.String("cookie_name", h.CookieName))
	return refuse(reasonNeedsHttps, "The session cookie "+h.CookieName+" needs HTTPS: use https:// for this site")
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
