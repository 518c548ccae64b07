package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pgsession/caddy-pgsession/internal/access"
	"github.com/pgsession/caddy-pgsession/store"
)

// What check-access reads of a config: its pg_session handlers, where they
// are, and their rules.

// site is one pg_session handler of a config.
type site struct {
	// hosts are the host matchers of the routes around the handler,
	// outermost first; a route that matches any host adds none.
	hosts  []caddyhttp.MatchHost
	listen []string
	public []string
	// publicMatch matches each of public, alone, so the one that serves a
	// path can be named.
	publicMatch []func(*http.Request) (bool, error)
	policy      *access.Policy
}

// name is the site's hosts, those of its innermost route that names any, or
// "every host" and the server's addresses.
func (s site) name() string {
	if len(s.hosts) == 0 {
		if len(s.listen) == 0 {
			return "every host"
		}
		return "every host on " + strings.Join(s.listen, ", ")
	}
	return strings.Join(s.hosts[len(s.hosts)-1], ", ")
}

// serves reports whether every route around the handler matches r's host,
// as Caddy's host matcher matches it.
func (s site) serves(r *http.Request) bool {
	for _, m := range s.hosts {
		if ok, _ := m.MatchWithError(r); !ok {
			return false
		}
	}
	return true
}

// publicPattern returns the first public pattern that serves r without a
// session, if any.
func (s site) publicPattern(r *http.Request) (string, bool, error) {
	for i, match := range s.publicMatch {
		ok, err := match(r)
		if err != nil || ok {
			return s.public[i], ok, err
		}
	}
	return "", false, nil
}

// The parts of Caddy's JSON config that lead to a pg_session handler.
type (
	caddyConfig struct {
		Apps struct {
			HTTP struct {
				Servers map[string]caddyServer `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	caddyServer struct {
		Listen []string     `json:"listen"`
		Routes []caddyRoute `json:"routes"`
	}
	caddyRoute struct {
		Match  []map[string]json.RawMessage `json:"match"`
		Handle []json.RawMessage            `json:"handle"`
	}
	// caddyHandler is what every handler has, and a subroute's routes.
	caddyHandler struct {
		Handler string       `json:"handler"`
		Routes  []caddyRoute `json:"routes"`
	}
	pgSessionHandler struct {
		Rules  []access.Rule `json:"rules"`
		Public []string      `json:"public"`
	}
)

// loadSites reads file as `caddy adapt` does, writing the adapter's warnings
// to warnings, and returns its pg_session sites with their rules compiled.
func loadSites(file, adapter string, warnings io.Writer) ([]site, error) {
	body, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the config: %v", err)
	}
	if adapter == "" && !strings.HasSuffix(strings.ToLower(file), ".json") {
		adapter = "caddyfile"
	}
	if adapter != "" {
		a := caddyconfig.GetAdapter(adapter)
		if a == nil {
			return nil, fmt.Errorf("unrecognized config adapter: %s", adapter)
		}
		var warns []caddyconfig.Warning
		// The file name makes the adapter's errors and warnings name the
		// file and line at fault.
		if body, warns, err = a.Adapt(body, map[string]any{"filename": file}); err != nil {
			return nil, err
		}
		for _, w := range warns {
			fmt.Fprintf(warnings, "warning: %s\n", w)
		}
	}
	var cfg caddyConfig
	if err := json.Unmarshal(body, &cfg); err != nil {
		return nil, fmt.Errorf("%s: reading the JSON config: %v", file, err)
	}
	var sites []site
	for _, name := range slices.Sorted(maps.Keys(cfg.Apps.HTTP.Servers)) {
		srv := cfg.Apps.HTTP.Servers[name]
		if err := findSites(&sites, srv.Routes, nil, srv.Listen); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	if len(sites) == 0 {
		return nil, fmt.Errorf("%s has no pg_session handler", file)
	}
	return sites, nil
}

// findSites appends to sites the pg_session handlers of routes and of the
// subroutes within them, hosts being the host matchers around routes.
func findSites(sites *[]site, routes []caddyRoute, hosts []caddyhttp.MatchHost, listen []string) error {
	for _, route := range routes {
		inner, err := routeHosts(route, hosts)
		if err != nil {
			return err
		}
		for _, raw := range route.Handle {
			var h caddyHandler
			if err := json.Unmarshal(raw, &h); err != nil {
				return fmt.Errorf("reading a handler: %v", err)
			}
			switch h.Handler {
			case "subroute":
				if err := findSites(sites, h.Routes, inner, listen); err != nil {
					return err
				}
			case "pg_session":
				s, err := newSite(raw, inner, listen)
				if err != nil {
					return err
				}
				*sites = append(*sites, s)
			}
		}
	}
	return nil
}

// routeHosts is outer and the host matcher of route, if all its matcher
// sets name hosts: a set without one matches any host, and with it the route.
func routeHosts(route caddyRoute, outer []caddyhttp.MatchHost) ([]caddyhttp.MatchHost, error) {
	var hosts caddyhttp.MatchHost
	for _, set := range route.Match {
		raw, ok := set["host"]
		if !ok {
			return outer, nil
		}
		var h []string
		if err := json.Unmarshal(raw, &h); err != nil {
			return nil, fmt.Errorf("reading a host matcher: %v", err)
		}
		hosts = append(hosts, h...)
	}
	if len(hosts) == 0 {
		return outer, nil
	}
	if err := hosts.Provision(caddy.Context{}); err != nil {
		return nil, fmt.Errorf("host matcher: %v", err)
	}
	return append(slices.Clip(outer), hosts), nil
}

// newSite reads a pg_session handler's public paths and rules, compiled as
// the plugin compiles them, but for second_factor, which a config that
// adapts has made possible.
func newSite(raw json.RawMessage, hosts []caddyhttp.MatchHost, listen []string) (site, error) {
	s := site{hosts: hosts, listen: listen}
	var h pgSessionHandler
	if err := json.Unmarshal(raw, &h); err != nil {
		return s, fmt.Errorf("the pg_session handler of %s: %v", s.name(), err)
	}
	var err error
	s.policy, err = access.Compile(h.Rules, access.CompileOptions{SecondFactorAvailable: true, UserKey: userKey})
	if err != nil {
		return s, fmt.Errorf("the pg_session handler of %s: %w", s.name(), err)
	}
	if PublicMatcher == nil {
		return s, errors.New("this build has no matcher of public paths: build the command with the plugin")
	}
	s.public = h.Public
	for _, p := range h.Public {
		m, err := PublicMatcher([]string{p})
		if err != nil {
			return s, fmt.Errorf("the pg_session handler of %s: public %s: %v", s.name(), p, err)
		}
		s.publicMatch = append(s.publicMatch, m)
	}
	return s, nil
}

// userKey is the store's form of a rule's username, as the plugin compiles
// the rules with it (ruleOptions in the root package, which this package
// cannot import), so that a user rule names the one account a sign-in finds.
func userKey(name string) (string, error) {
	u, err := store.PrepareUsername(name)
	return u.Key, err
}
