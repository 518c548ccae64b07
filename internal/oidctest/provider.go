package oidctest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/pgsession/caddy-pgsession/internal/oidctest/control"
)

// Options configure an OpenID provider.
type Options struct {
	// ClientID and ClientSecret are the one client's; "test-client" and
	// "test-secret" when empty.
	ClientID, ClientSecret string
	// RedirectURIs are the redirect URIs the client registered; an
	// authorization request naming another gets an error page, never a
	// redirect. AllowRedirectURI adds one later.
	RedirectURIs []string
	// Host is the host name of the issuer, http://Host:port; 127.0.0.1
	// when empty. Another name must be dialled at 127.0.0.1 by the client.
	Host string
	// RequirePKCE refuses authorization requests without a code
	// challenge; S256 is the one method offered either way.
	RequirePKCE bool
}

// User is an account of the OpenID provider; see control.User for the
// claims it gives.
type User = control.User

// Knobs spoil the next ID token; see control.Knobs for each.
type Knobs = control.Knobs

// Provider is a running OpenID provider: discovery at
// Issuer()/.well-known/openid-configuration, and the authorization
// (/authorize, a login page), token (/token), userinfo (/userinfo) and key
// set (/jwks) endpoints it names.
type Provider struct {
	server
}

// StartProvider starts an OpenID provider for the test, stopped when the
// test ends.
func StartProvider(tb testing.TB, opts Options) *Provider {
	tb.Helper()
	s := newServer(opts.ClientID, opts.ClientSecret)
	args := append(s.args("oidc", opts.RedirectURIs), "-host", opts.Host)
	if opts.RequirePKCE {
		args = append(args, "-require-pkce")
	}
	s.proc = startProcess(tb, args)
	return &Provider{s}
}

// Issuer is the provider's issuer URL, where its discovery document is.
func (p *Provider) Issuer() string { return p.proc.url }

// AddUser adds an account, or replaces the one with the same subject.
func (p *Provider) AddUser(tb testing.TB, u User) {
	tb.Helper()
	p.control(tb, "/control/users", u, nil)
}

// Next spoils the next ID token as k says. Each call spoils one token, in
// the order of the calls.
func (p *Provider) Next(tb testing.TB, k Knobs) {
	tb.Helper()
	p.control(tb, "/control/next", k, nil)
}

// RotateKeys signs from now on with a new key, under a new kid, and
// publishes it alone: a client's cached key set does not have it, and
// must fetch the keys again. It returns the new kid. Access tokens signed
// before no longer pass the userinfo endpoint.
func (p *Provider) RotateKeys(tb testing.TB) string {
	tb.Helper()
	return p.rotate(tb, false)
}

// RotateKeysKeepingOld is RotateKeys that keeps the previous key
// published beside the new one until the next rotation, as providers do
// while tokens signed with it are still about.
func (p *Provider) RotateKeysKeepingOld(tb testing.TB) string {
	tb.Helper()
	return p.rotate(tb, true)
}

func (p *Provider) rotate(tb testing.TB, keepOld bool) string {
	tb.Helper()
	var out control.Rotated
	p.control(tb, "/control/rotate-keys", control.Rotation{KeepOld: keepOld}, &out)
	return out.Kid
}

// server is what both providers share: the process, the client, and the
// control API.
type server struct {
	proc                   *process
	clientID, clientSecret string
}

func newServer(clientID, clientSecret string) server {
	if clientID == "" {
		clientID = "test-client"
	}
	if clientSecret == "" {
		clientSecret = "test-secret"
	}
	return server{clientID: clientID, clientSecret: clientSecret}
}

func (s *server) args(mode string, redirectURIs []string) []string {
	args := []string{"-mode", mode, "-client-id", s.clientID, "-client-secret", s.clientSecret}
	for _, uri := range redirectURIs {
		args = append(args, "-redirect-uri", uri)
	}
	return args
}

// ClientID is the client's id.
func (s *server) ClientID() string { return s.clientID }

// ClientSecret is the client's secret.
func (s *server) ClientSecret() string { return s.clientSecret }

// Addr is the address the provider listens on, 127.0.0.1:port, which is
// where to dial the host of its URLs.
func (s *server) Addr() string { return s.proc.addr }

// AllowRedirectURI registers another redirect URI for the client, for a
// test that learns its callback's port after the provider started.
func (s *server) AllowRedirectURI(tb testing.TB, uri string) {
	tb.Helper()
	s.control(tb, "/control/redirect-uris", control.RedirectURI{URI: uri}, nil)
}

// Requests counts the requests each endpoint has answered since the
// provider last started: for the OpenID provider "discovery", "jwks",
// "authorize", "token" and "userinfo"; for GitHub "authorize",
// "access_token" and the API's routes as "GET /user", "GET /user/emails",
// "GET /user/orgs", "GET /user/teams", "GET /orgs/{org}/members/{username}",
// "GET /orgs/{org}/teams/{team}/memberships/{username}".
func (s *server) Requests(tb testing.TB) map[string]int {
	tb.Helper()
	resp, err := controlClient.Get("http://" + s.proc.addr + "/control/requests")
	if err != nil {
		tb.Fatalf("oidctest: asking the provider's request counts: %v", err)
	}
	defer resp.Body.Close()
	counts := map[string]int{}
	if err := json.NewDecoder(resp.Body).Decode(&counts); err != nil {
		tb.Fatalf("oidctest: reading the provider's request counts: %v", err)
	}
	return counts
}

// Stop takes the provider down: when it returns, its port refuses
// connections. It does nothing if the provider is down already.
func (s *server) Stop() { s.proc.stop() }

// Start brings the provider back on the same port, with the users,
// redirect URIs, keys and pending knobs it had, and GitHub's tokens; codes
// not yet exchanged are lost, and so are the OpenID provider's access
// tokens, which only its userinfo endpoint takes. It does nothing if the
// provider is running.
func (s *server) Start() {
	s.proc.tb.Helper()
	if s.proc.running() {
		return
	}
	if err := s.proc.start(program.Binary(s.proc.tb)); err != nil {
		s.proc.tb.Fatal(err)
	}
}

// Logs is what the provider has printed.
func (s *server) Logs() string { return s.proc.log.String() }

var controlClient = &http.Client{Timeout: 10 * time.Second}

// control posts body as JSON to the control API and reads the answer into
// out, when out is not nil.
func (s *server) control(tb testing.TB, path string, body, out any) {
	tb.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := controlClient.Post("http://"+s.proc.addr+path, "application/json", bytes.NewReader(data))
	if err != nil {
		tb.Fatalf("oidctest: %s: %v", path, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		tb.Fatalf("oidctest: %s: %s: %s", path, resp.Status, answer)
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			tb.Fatalf("oidctest: %s: reading %q: %v", path, answer, err)
		}
	}
}
