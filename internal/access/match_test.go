package access

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The patterns and paths on which a rule's matching is held to Caddy's path
// matcher: the kinds of pattern, and paths written to slip past one.
var (
	trickyPatterns = []string{"/admin", "/admin/", "/admin/*", "/admin*", "*.php", "*/admin/*", "/ADMIN/*",
		"/admin%2Fx", "/admin%2F*", "/a/%*/b", "//admin/*", "/a/*/c", "*", "/*", "/secret", "/x%25y"}
	trickyPaths = []string{"/admin", "/admin/", "//admin", "//admin/x", "/ADMIN/x", "/Admin", "/admin%2Fx",
		"/admin%2fx", "/admin/x", "/admin/../secret", "/admin/./x", "/x/../admin/y", "/adminx", "/a/b%2Fc/b",
		"/a/x/c", "/index.PHP", "/x/admin/y", "/x%25y", "/x%y", "/%61dmin/x", "/", "", "*", "/admin//x",
		"/admin/..", "/admin/%2e%2e/secret", "/a%20b"}
)

// matchPathDirectly is Caddy's own matcher on the request as Caddy serves it.
func matchPathDirectly(t testing.TB, pattern string, u *url.URL) bool {
	m := caddyhttp.MatchPath{pattern}
	require.NoError(t, m.Provision(caddy.Context{}))
	r := (&http.Request{Method: "GET", URL: u}).WithContext(
		context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	ok, err := m.MatchWithError(r)
	require.NoError(t, err)
	return ok
}

// requestURL parses a path as a server reads a request line, keeping its
// escaped form, or is nil when no request line could carry it.
func requestURL(path string) *url.URL {
	if path == "" || path == "*" {
		return &url.URL{Path: path}
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil
	}
	return u
}

func TestMatchesAsCaddy(t *testing.T) {
	t.Parallel()
	for _, pattern := range trickyPatterns {
		p, err := Compile([]Rule{{Action: "deny", Paths: []string{pattern}}}, CompileOptions{})
		require.NoError(t, err)
		for _, path := range trickyPaths {
			u := requestURL(path)
			if u == nil {
				continue
			}
			want := matchPathDirectly(t, pattern, u)
			got := p.Decide(&http.Request{Method: "GET", URL: u}, eve).Rule == 0
			assert.Equal(t, want, got, "pattern %s, path %s", pattern, path)
		}
	}
}

// A few outcomes spelled out, so the test above is known to compare
// something: these are what the issue names.
func TestTrickyPaths(t *testing.T) {
	t.Parallel()
	p := compileLines(t, "deny /admin/* /admin")
	for path, denied := range map[string]bool{"//admin": true, "/ADMIN/x": true, "/admin%2Fx": true,
		"/admin/../secret": false, "/admin": true, "/admin/": true, "/administrator": false} {
		assert.Equal(t, denied, !p.Decide(get(path), eve).Allowed, path)
	}
}

// One rule's several patterns match as one MatchPath of all of them, though
// Decide splits those with % from the others.
func TestMixedPatternsOfOneRule(t *testing.T) {
	t.Parallel()
	patterns := []string{"/a%2Fb", "/c/*"}
	p, err := Compile([]Rule{{Action: "deny", Paths: patterns}}, CompileOptions{})
	require.NoError(t, err)
	for _, path := range []string{"/a%2Fb", "/a/b", "/c/x", "/C/X", "/d"} {
		u := requestURL(path)
		want := matchPathDirectly(t, patterns[0], u) || matchPathDirectly(t, patterns[1], u)
		assert.Equal(t, want, p.Decide(&http.Request{Method: "GET", URL: u}, eve).Rule == 0, path)
	}
}

// FuzzMatchesAsCaddy holds Decide's path matching to Caddy's matcher on any
// pattern and path.
func FuzzMatchesAsCaddy(f *testing.F) {
	for i, pattern := range trickyPatterns {
		f.Add(pattern, trickyPaths[i%len(trickyPaths)])
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		if checkPath(pattern) != nil {
			return
		}
		u := requestURL(path)
		if u == nil {
			return
		}
		p, err := Compile([]Rule{{Action: "deny", Paths: []string{pattern}}}, CompileOptions{})
		require.NoError(t, err)
		want := matchPathDirectly(t, pattern, u)
		got := p.Decide(&http.Request{Method: "GET", URL: u}, eve).Rule == 0
		if want != got {
			t.Fatalf("pattern %q, path %q (escaped %q): Caddy says %v, Decide %v", pattern, path, u.EscapedPath(), want, got)
		}
	})
}
