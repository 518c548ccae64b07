package pgsession

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Which requests the `public` option lets through without a session.
// Caddy's path matcher compares a cleaned, lower-cased and decoded path, but
// the upstream gets the path exactly as sent, and a Tomcat, Spring or IIS
// upstream reads "/assets/..;/admin", "/assets/..%5cadmin",
// "/assets/%2fadmin" or "/ASSETS/x" as a path of its own, perhaps "/admin".
// So a request is public only if its path also means one thing: no dot
// segments, no ";", no encoded "/", "\", "%" or NUL, and a match with the
// case as sent. Any other request goes through the gate like a protected one.

// publicPaths matches the `public` patterns.
type publicPaths struct {
	// folded is Caddy's own matcher of the patterns.
	folded caddyhttp.MatchPath
	// exact holds the patterns with their case marked (see markCase), so a
	// marked path matches one only with the case the pattern has.
	exact caddyhttp.MatchPath
	// lowerPatterns is true when lower-casing changes no pattern, so a path
	// that lower-casing leaves alone needs no second match.
	lowerPatterns bool
}

// newPublicPaths provisions the matchers of patterns.
func newPublicPaths(ctx caddy.Context, patterns []string) (publicPaths, error) {
	p := publicPaths{folded: caddyhttp.MatchPath(append([]string(nil), patterns...)), lowerPatterns: true}
	for _, pattern := range patterns {
		if strings.ContainsAny(pattern, "{%") {
			// Placeholders are replaced, and escapes compared, at request
			// time: Caddy lower-cases those, so only a path without
			// upper case matches them.
			p.exact = append(p.exact, pattern)
			continue
		}
		marked := markCase(pattern)
		p.lowerPatterns = p.lowerPatterns && marked == pattern
		p.exact = append(p.exact, marked)
	}
	if err := p.folded.Provision(ctx); err != nil {
		return publicPaths{}, err
	}
	if err := p.exact.Provision(ctx); err != nil {
		return publicPaths{}, err
	}
	return p, nil
}

// match reports whether r may be served without a session.
func (p *publicPaths) match(r *http.Request) (bool, error) {
	if len(p.folded) == 0 {
		return false, nil
	}
	ok, err := p.folded.MatchWithError(r)
	if err != nil || !ok || ambiguousPath(r.URL) {
		return false, err
	}
	marked := markCase(r.URL.Path)
	if marked == r.URL.Path && p.lowerPatterns {
		return true, nil
	}
	// Match again as Caddy would, on the marked path, so case counts.
	u := *r.URL
	if marked != u.Path {
		u.Path, u.RawPath = marked, ""
	}
	again := *r
	again.URL = &u
	return p.exact.MatchWithError(&again)
}

// publicMatcher is newPublicPaths for `caddy pg-session check-access`, which
// cannot import this package, so that it calls public exactly what the gate
// serves without a session.
func publicMatcher(patterns []string) (func(*http.Request) (bool, error), error) {
	p, err := newPublicPaths(caddy.Context{}, patterns)
	if err != nil {
		return nil, err
	}
	return p.match, nil
}

// ambiguousPath reports whether u's path may mean another path to a server
// behind the gate than the one Caddy's matcher saw.
func ambiguousPath(u *url.URL) bool {
	// ";" starts path parameters (Tomcat, Spring), "\" is a separator on
	// Windows (IIS), a "%" left after decoding was sent as %25 and may be
	// decoded twice, and NUL ends a string in C.
	if strings.ContainsAny(u.Path, ";\\%\x00") {
		return true
	}
	raw := strings.ToLower(u.RawPath)
	if strings.Contains(raw, "%2f") || strings.Contains(raw, "%5c") {
		return true
	}
	// Dot segments, sent as such or as %2e: Caddy cleans them away before
	// matching, an upstream may resolve them differently.
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// markCase writes each character that lower-casing changes as NUL and its
// lower-case form, so that a matcher that lower-cases what it compares
// (Caddy's path matcher) still tells "/Assets" from "/assets". NUL never
// occurs in a path that ambiguousPath lets through.
func markCase(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return unicode.ToLower(r) != r })
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		if l := unicode.ToLower(r); l != r {
			b.WriteByte(0)
			r = l
		}
		b.WriteRune(r)
	}
	return b.String()
}
