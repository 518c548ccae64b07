package access

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"runtime"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// A rule's paths mean what caddyhttp.MatchPath makes of them. The matcher
// lowercases and cleans the request's path for each pattern it reads, which
// for twenty rules is most of Decide's time; so Decide does that once per
// request and each pattern is compared with the result, by the same cases
// and in the same way as MatchPath's. Patterns MatchPath reads another way
// (with % they compare the escaped path; with // the path is cleaned
// without merging slashes), and every pattern on Windows, where it also
// normalises backslashes, are left to MatchPath itself. match_test.go holds
// the two to the same answers, and FuzzMatchesAsCaddy looks for a case where
// they differ.

// kind is how MatchPath reads a pattern without % or //.
type kind uint8

const (
	anyPath  kind = iota // "*"
	contains             // *x*: the only two wildcards at both ends
	suffix               // *x: the only wildcard, at the start
	prefix               // x*: the only wildcard, at the end
	exact                // no glob character
	glob                 // path.Match's globbing
)

type pattern struct {
	kind kind
	text string // lowercased; for contains, suffix and prefix, without the wildcards
}

// paths are a rule's patterns, made ready for a request's path.
type paths struct {
	fast []pattern
	// slow are the patterns MatchPath reads itself, lowercased as its
	// Provision does.
	slow caddyhttp.MatchPath
}

func compilePaths(patterns []string) paths {
	var ps paths
	for _, p := range patterns {
		if p != "*" && (strings.Contains(p, "%") || strings.Contains(p, "//") || runtime.GOOS == "windows") {
			ps.slow = append(ps.slow, p)
			continue
		}
		p = strings.ToLower(p)
		n := strings.Count(p, "*")
		switch {
		case p == "*":
			ps.fast = append(ps.fast, pattern{anyPath, p})
		case n == 2 && strings.HasPrefix(p, "*") && strings.HasSuffix(p, "*"):
			ps.fast = append(ps.fast, pattern{contains, p[1 : len(p)-1]})
		case n == 1 && strings.HasPrefix(p, "*"):
			ps.fast = append(ps.fast, pattern{suffix, p[1:]})
		case n == 1 && strings.HasSuffix(p, "*"):
			ps.fast = append(ps.fast, pattern{prefix, p[:len(p)-1]})
		case !strings.ContainsAny(p, `*?[\`):
			ps.fast = append(ps.fast, pattern{exact, p})
		default:
			ps.fast = append(ps.fast, pattern{glob, p})
		}
	}
	// The placeholders Provision would leave alone are refused by checkPath,
	// and its context is unused.
	_ = ps.slow.Provision(caddy.Context{})
	return ps
}

func (p pattern) matches(cleaned string) bool {
	switch p.kind {
	case anyPath:
		return true
	case contains:
		return strings.Contains(cleaned, p.text)
	case suffix:
		return strings.HasSuffix(cleaned, p.text)
	case prefix:
		return strings.HasPrefix(cleaned, p.text)
	case exact:
		return cleaned == p.text
	}
	ok, _ := path.Match(p.text, cleaned)
	return ok
}

// requestPath is one request's path as the patterns read it.
type requestPath struct {
	r       *http.Request
	cleaned string        // lowercased and cleaned, slashes merged, as MatchPath cleans it
	slow    *matchRequest // for MatchPath itself, taken when a rule first needs it
}

func newRequestPath(r *http.Request) requestPath {
	return requestPath{r: r, cleaned: caddyhttp.CleanPath(strings.ToLower(r.URL.Path), true)}
}

func (rp *requestPath) matches(ps *paths) bool {
	for _, p := range ps.fast {
		if p.matches(rp.cleaned) {
			return true
		}
	}
	if len(ps.slow) == 0 {
		return false
	}
	if rp.slow == nil {
		rp.slow = matchRequests.Get().(*matchRequest)
		rp.slow.url = *rp.r.URL
	}
	ok, _ := ps.slow.MatchWithError(&rp.slow.r)
	return ok
}

func (rp *requestPath) release() {
	if rp.slow != nil {
		matchRequests.Put(rp.slow)
	}
}

// matchRequest is a request for MatchPath itself: a copy of the caller's
// URL, and a context holding only a replacer, which the matcher asks for
// and, with no placeholder in a pattern, never uses; so the caller's request
// needs none, as check-access's has none. Requests take them from a pool so
// as to allocate nothing.
type matchRequest struct {
	r   http.Request
	url url.URL
}

var (
	matchContext  = context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	matchRequests = sync.Pool{New: func() any {
		m := &matchRequest{r: *(&http.Request{}).WithContext(matchContext)}
		m.r.URL = &m.url
		return m
	}}
)

// MatchesAny reports whether r's path matches any of patterns, as a rule's
// paths would: for an API token limited to some paths. The patterns are
// compiled on each call, which a token limited to paths pays on each
// request; a rule's are compiled once.
func MatchesAny(r *http.Request, patterns []string) bool {
	ps := compilePaths(patterns)
	rp := newRequestPath(r)
	defer rp.release()
	return rp.matches(&ps)
}
