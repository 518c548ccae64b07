package pgsession

import (
	"bytes"
	"encoding/json"
	"net"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pgsession/caddy-pgsession/internal/request"
)

// The rules of single sign-on's options, cookie_domain and login_url:
// what would make a cookie the browser drops, or a redirect that comes
// back without the cookie and goes again, is refused before it serves.

// checkSingleSignOn applies the rules of cookie_domain and login_url.
func (h *Handler) checkSingleSignOn() error {
	domain := h.CookieDomain
	if domain != "" {
		if domain != strings.ToLower(domain) || strings.HasPrefix(domain, ".") || net.ParseIP(domain) != nil ||
			!request.UnderDomain("x."+domain, domain) || !plainDomain(domain) {
			return optionErrorf("cookie_domain", "cookie_domain must be a domain name in lower case, such as example.com, not %q", domain)
		}
		if !strings.Contains(domain, ".") {
			return optionErrorf("cookie_domain", "cookie_domain %s is a single label: browsers refuse a cookie for it; "+
				"use a domain such as example.com", domain)
		}
		// A __Host- cookie is one host's by definition, and browsers
		// drop one that names a Domain.
		if strings.HasPrefix(h.CookieName, "__Host-") {
			return optionErrorf("cookie_domain", "cookie_domain cannot be used with cookie_name %s: browsers drop a __Host- cookie "+
				"that has a Domain; use a __Secure- name instead", h.CookieName)
		}
	}
	if h.LoginURL == "" {
		return nil
	}
	u, err := url.Parse(h.LoginURL)
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || !strings.HasPrefix(u.Path, "/") {
		return optionErrorf("login_url", "login_url must be the address of the portal's login page, such as "+
			"https://auth.example.com/login, without a query, not %q", h.LoginURL)
	}
	if domain == "" {
		return optionErrorf("login_url", "login_url needs cookie_domain: without it, the cookie the portal sets "+
			"never reaches this site, and every visit would be sent back to sign in")
	}
	if !request.UnderDomain(u.Hostname(), domain) {
		return optionErrorf("login_url", "login_url %s is not under cookie_domain %s: the cookie it sets would not reach "+
			"the sites under %s", h.LoginURL, domain, domain)
	}
	if u.Scheme == "http" && strings.EqualFold(h.Secure, "on") {
		return optionErrorf("login_url", "login_url %s is plain HTTP, but secure is on: browsers drop a Secure cookie "+
			"set over plain HTTP; use https://", h.LoginURL)
	}
	return nil
}

// plainDomain reports whether s is made of DNS labels: letters, digits
// and hyphens, joined by single dots.
func plainDomain(s string) bool {
	for _, label := range strings.Split(s, ".") {
		if label == "" || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkSiteNames refuses a site name outside cookie_domain, which the
// cookie would never reach: every route of srv that holds a pg_session
// handler with this cookie_domain, as the Caddyfile's site blocks become,
// must match only hosts under it. Routes are read as they stand while the
// server is being set up: those before this one already hold their
// handlers, the others still their JSON.
func (h *Handler) checkSiteNames(srv *caddyhttp.Server) error {
	if srv == nil || h.CookieDomain == "" {
		return nil
	}
	mark, err := json.Marshal(map[string]string{"cookie_domain": h.CookieDomain})
	if err != nil {
		return err
	}
	mark = bytes.Trim(mark, "{}")
	for _, route := range srv.Routes {
		if !routeHolds(route, h.CookieDomain, mark) {
			continue
		}
		for _, set := range route.MatcherSets {
			for _, m := range set {
				var hosts caddyhttp.MatchHost
				switch v := m.(type) {
				case *caddyhttp.MatchHost:
					hosts = *v
				case caddyhttp.MatchHost:
					hosts = v
				}
				for _, host := range hosts {
					name := strings.TrimPrefix(strings.ToLower(host), "*.")
					if !request.UnderDomain(name, h.CookieDomain) {
						return optionErrorf("cookie_domain", "the site %s is not under cookie_domain %s: the session cookie "+
							"would never reach it; serve it under %s or give it a pg_session block of its own", host,
							h.CookieDomain, h.CookieDomain)
					}
				}
			}
		}
	}
	return nil
}

// routeHolds reports whether a route holds a pg_session handler whose
// cookie_domain is domain: among its handlers, through subroutes, or in
// the JSON of handlers not yet set up (mark is the option as JSON writes it).
func routeHolds(route caddyhttp.Route, domain string, mark []byte) bool {
	for _, raw := range route.HandlersRaw {
		if bytes.Contains(raw, mark) && bytes.Contains(raw, []byte(`"pg_session"`)) {
			return true
		}
	}
	for _, handler := range route.Handlers {
		switch v := handler.(type) {
		case *Handler:
			if v.CookieDomain == domain {
				return true
			}
		case *caddyhttp.Subroute:
			for _, sub := range v.Routes {
				if routeHolds(sub, domain, mark) {
					return true
				}
			}
		}
	}
	return false
}
