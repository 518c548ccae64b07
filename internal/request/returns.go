package request

import (
	"net"
	"net/url"
	"strings"
)

// Returns says which absolute addresses a portal may send a browser back
// to after signing it in: an HTTPS page (or one of the portal's own
// scheme) on the cookie domain or one of its subdomains, or on one of the
// trusted origins. Every other site is someone else's, and a sign-in that
// ends there is an open redirect.
type Returns struct {
	// Domain is the cookie domain, lower case, without a leading dot; ""
	// allows no domain.
	Domain string
	// Origins are the trusted origins, scheme://host[:port], lower case.
	Origins []string
	// Scheme is the portal's own scheme, http or https: a portal served
	// over plain HTTP (a test, a private network) may send a browser back
	// to the plain HTTP sites it shares the cookie with.
	Scheme string
}

// Allows reports whether target is an absolute address a browser may be
// sent back to. It reads target as strictly as the path rule of
// SafeRedirect: no control characters, spaces or backslashes (which
// browsers read as slashes), no user info, a host of ASCII letters,
// digits, dots and hyphens that is not an IP address, and a scheme written
// in lower case.
func (rr Returns) Allows(target string) bool {
	if target == "" || len(target) > 2048 {
		return false
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	var scheme string
	switch {
	case strings.HasPrefix(target, "https://"):
		scheme = "https"
	case strings.HasPrefix(target, "http://") && rr.Scheme == "http":
		scheme = "http"
	default:
		return false
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != scheme || u.Opaque != "" || u.User != nil || u.Host == "" {
		return false
	}
	// The authority must be all there is between "//" and the path: a
	// parser that reads it otherwise would see another host.
	rest := target[len(scheme)+3:]
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		rest = rest[:end]
	}
	if rest != u.Host {
		return false
	}
	host := u.Hostname()
	if !plainHostname(host) || net.ParseIP(host) != nil {
		return false
	}
	if port := u.Port(); port == "" && strings.HasSuffix(u.Host, ":") {
		return false
	}
	if rr.Domain != "" && (host == rr.Domain || strings.HasSuffix(host, "."+rr.Domain)) {
		return true
	}
	origin := scheme + "://" + u.Host
	for _, o := range rr.Origins {
		if o == origin {
			return true
		}
	}
	return false
}

// plainHostname reports whether host is a DNS name in lower-case ASCII:
// labels of letters, digits and hyphens, joined by single dots.
func plainHostname(host string) bool {
	if host == "" || len(host) > 253 || host[0] == '.' || host[len(host)-1] == '.' || strings.Contains(host, "..") {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// UnderDomain reports whether host (without a port) is domain or one of
// its subdomains, as a cookie with Domain=domain reaches it.
func UnderDomain(host, domain string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return domain != "" && (host == domain || strings.HasSuffix(host, "."+domain))
}
