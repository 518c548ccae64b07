package pgsession

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/pgsession/caddy-pgsession/store"
)

// access is who may use a route.
type access int

const (
	anyone      access = iota // login, logout, register, the login page
	withSession               // a logged-in user: me, their sessions, their password
	admin                     // X-Admin-Token or an admin's session
)

// route is one of the handler's own routes. Pattern segments in braces
// ({id}) match one path segment and reach the handler through r.PathValue.
type route struct {
	method  string
	pattern []string
	access  access
	serve   func(http.ResponseWriter, *http.Request, *caller) error
}

// caller is who is making a request to an own route, as far as it is known.
type caller struct {
	session *store.Session // nil without a live session
	token   string         // the session cookie's value, if any
	admin   bool           // authenticated by the admin token
}

// router matches the handler's own routes. Requests for any other path fall
// through to the gate, so an application may use paths next to the plugin's.
type router struct {
	routes []route
	// firsts are the routes' first path segments: a path starting with
	// none of them, as almost every request to the site does, is no route,
	// and is told so without splitting it.
	firsts []string
}

func (rt *router) add(method, path string, acc access, serve func(http.ResponseWriter, *http.Request, *caller) error) {
	rt.routes = append(rt.routes, route{method: method, pattern: splitPath(path), access: acc, serve: serve})
	if first := splitPath(path)[0]; !slices.Contains(rt.firsts, first) {
		rt.firsts = append(rt.firsts, first)
	}
	if method == http.MethodGet {
		rt.routes = append(rt.routes, route{method: http.MethodHead, pattern: splitPath(path), access: acc, serve: serve})
	}
}

// match finds the route for r. When the path matches but the method does
// not, it returns the methods the path allows instead.
func (rt *router) match(r *http.Request) (*route, map[string]string, []string) {
	path := r.URL.EscapedPath()
	first, _, _ := strings.Cut(strings.TrimLeft(path, "/"), "/")
	if !slices.Contains(rt.firsts, first) {
		return nil, nil, nil
	}
	segments := splitPath(path)
	var allowed []string
	for i := range rt.routes {
		rte := &rt.routes[i]
		params, ok := matchSegments(rte.pattern, segments)
		if !ok {
			continue
		}
		if rte.method == r.Method {
			return rte, params, nil
		}
		allowed = append(allowed, rte.method)
	}
	sort.Strings(allowed)
	return nil, nil, allowed
}

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

func matchSegments(pattern, segments []string) (map[string]string, bool) {
	if len(pattern) != len(segments) {
		return nil, false
	}
	var params map[string]string
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			v, err := url.PathUnescape(segments[i])
			if err != nil || v == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[p[1:len(p)-1]] = v
			continue
		}
		if p != segments[i] {
			return nil, false
		}
	}
	return params, true
}
