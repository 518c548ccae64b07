package integration

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/template"

	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
	"github.com/pgsession/caddy-pgsession/internal/nginxtest"
	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// The single sign-on tests' world: one Caddy with the plugin serving the
// portal and several sites under example.test on one port; a second Caddy
// (the same binary, but no pg_session in its config, as a Caddy that cannot
// load plugins) serving wiki.example.test through forward_auth; an nginx
// serving app.example.test through auth_request; a recording upstream
// behind them all; and browsers that reach every *.test name at 127.0.0.1.
// It is all plain HTTP: the portal's scheme is http, so it may send
// browsers back to the http sites it shares the cookie with, and a cookie
// jar applies Domain cookies to every host under example.test, whatever
// the port.

// portalCaddyfile is the Caddy with the plugin. Its sites:
//   - auth: the portal, with the same snippet as the others (a site named as
//     its own portal must just serve the login);
//   - docs: a site signing in at the portal;
//   - plain: a plain HTTP site whose login_url is https;
//   - legacy: a site whose cookie_name is not the portal's, so it never sees
//     the portal's cookie;
//   - misnamed: a portal whose login_url path is not its login_path;
//   - every other host (docs.other.test), on a catch-all site with the snippet.
const portalCaddyfile = `{
	admin off
	auto_https off
	default_bind 127.0.0.1
	servers {
		trusted_proxies static 127.0.0.1/32
	}
	pg_session {
		database_url {{.DatabaseURL}}
		cleanup_interval 1h
	}
}
(sso) {
	pg_session {
		cookie_domain example.test
		login_url http://auth.example.test:{{.Port}}/login
		public /public/*
		allow /admin/* admin
	}
}
http://auth.example.test:{{.Port}} {
	import sso
	respond "portal home of {http.auth.user.username}"
}
http://docs.example.test:{{.Port}} {
	import sso
	reverse_proxy {{.Upstream}}
}
http://plain.example.test:{{.Port}} {
	pg_session {
		cookie_domain example.test
		login_url https://auth.example.test/login
	}
	reverse_proxy {{.Upstream}}
}
http://legacy.example.test:{{.Port}} {
	pg_session {
		cookie_domain example.test
		cookie_name legacy_session
		login_url http://auth.example.test:{{.Port}}/login
	}
	reverse_proxy {{.Upstream}}
}
http://misnamed.example.test:{{.Port}} {
	pg_session {
		cookie_domain example.test
		login_url http://misnamed.example.test:{{.Port}}/sign-in
	}
	reverse_proxy {{.Upstream}}
}
http://:{{.Port}} {
	import sso
	reverse_proxy {{.Upstream}}
}
`

// proxyGlobalOptions go before the forward_auth recipe in the wiki's Caddyfile.
const proxyGlobalOptions = `{
	admin off
	auto_https off
	default_bind 127.0.0.1
}
`

// ssoWorld is a running portal Caddy, the two proxies that ask it, their
// upstream and the database.
type ssoWorld struct {
	t        *testing.T
	db       *database
	port     int // the portal Caddy's
	wikiPort int // the forward_auth Caddy's
	appPort  int // nginx's
	upstream *recorder
	// hosts are the origins whose cookies make a browser's state, for
	// telling a redirect loop from a chain that goes somewhere.
	hosts []string
}

// startSSO starts the portal Caddy, the forward_auth Caddy and nginx, each
// on a free port, with a database of the test's own.
func startSSO(t *testing.T) *ssoWorld {
	t.Helper()
	w := &ssoWorld{t: t, db: newDatabase(t), port: freePort(t), upstream: startRecorder(t)}
	var b strings.Builder
	require.NoError(t, template.Must(template.New("").Parse(portalCaddyfile)).Execute(&b, map[string]any{
		"DatabaseURL": w.db.url, "Port": w.port, "Upstream": w.upstream.hostPort(),
	}))
	caddyproc.Start(t, caddyBinary, b.String(), fmt.Sprintf("http://127.0.0.1:%d/", w.port), 0)

	w.wikiPort = freePort(t)
	test := recipeValues{
		Site:       w.wiki(""),
		ServerName: "app.example.test",
		Verify:     fmt.Sprintf("http://127.0.0.1:%d", w.port),
		Portal:     fmt.Sprintf("auth.example.test:%d", w.port),
		App:        w.upstream.hostPort(),
	}
	caddyproc.Start(t, caddyBinary, proxyGlobalOptions+renderRecipe(t, forwardAuthRecipe, test),
		fmt.Sprintf("http://127.0.0.1:%d/", w.wikiPort), 0)
	w.appPort = nginxtest.Start(t, func(port int) string {
		test.Listen = fmt.Sprintf("127.0.0.1:%d", port)
		return renderRecipe(t, nginxRecipe, test)
	}).Port

	for _, host := range []string{"auth", "docs", "plain", "legacy", "misnamed"} {
		w.hosts = append(w.hosts, w.url(host, "/"))
	}
	w.hosts = append(w.hosts, fmt.Sprintf("http://docs.other.test:%d/", w.port), w.wiki("/"), w.app("/"),
		fmt.Sprintf("http://app.other.test:%d/", w.appPort))
	return w
}

// wiki is the address of path on the site behind Caddy's forward_auth.
func (w *ssoWorld) wiki(path string) string {
	return fmt.Sprintf("http://wiki.example.test:%d%s", w.wikiPort, path)
}

// app is the address of path on the site behind nginx's auth_request.
func (w *ssoWorld) app(path string) string {
	return fmt.Sprintf("http://app.example.test:%d%s", w.appPort, path)
}

// url is the address of path on the site host.example.test of the portal Caddy.
func (w *ssoWorld) url(host, path string) string {
	return fmt.Sprintf("http://%s.example.test:%d%s", host, w.port, path)
}

// loginURL is the portal's login page, as login_url names it.
func (w *ssoWorld) loginURL() string { return w.url("auth", "/login") }

// ssoTransport dials every name under .test at 127.0.0.1, keeping the
// port, the Host header and the URL's name, so the cookie jar treats each
// as the site it names.
func ssoTransport() *http.Transport {
	dialer := &net.Dialer{}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".test") {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
}

// newSSOBrowser is a browser (a cookie jar, every redirect seen) for the *.test names.
func newSSOBrowser(t *testing.T) *browser {
	client, jar := webtest.NewBrowser(t, ssoTransport())
	return &browser{t: t, client: client, jar: jar}
}

// ssoBare is a client without cookies for the *.test names, as a script.
func ssoBare() *http.Client { return webtest.NewBare(ssoTransport()) }

// hop is one request of a chain of redirects: where it went, and what came back.
type hop struct {
	url      string
	status   int
	location string
}

func (h hop) String() string { return fmt.Sprintf("%s → %d %s", h.url, h.status, h.location) }

// maxRedirects is how many redirects a browser is let follow in these
// tests: a sign-in takes one or two, a loop guard three.
const maxRedirects = 5

// follow navigates b to rawURL as a browser would, following redirects
// with GET, and returns the chain and the page it ended on. It fails the
// test on more than maxRedirects redirects, or on a cycle: the same address
// with the same cookies in the jar a second time, where a browser would go
// round for ever.
func (w *ssoWorld) follow(b *browser, rawURL string) ([]hop, response) {
	t := b.t
	t.Helper()
	var chain []hop
	seen := map[string]bool{}
	visited := append([]string(nil), w.hosts...)
	for {
		visited = append(visited, rawURL)
		state := rawURL + "\n" + cookieState(b, visited)
		if seen[state] {
			t.Fatalf("a redirect loop: %s again with the same cookies, after %v", rawURL, chain)
		}
		seen[state] = true
		resp := b.getPage(rawURL)
		next := resp.Header.Get("Location")
		chain = append(chain, hop{url: rawURL, status: resp.StatusCode, location: next})
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			return chain, resp
		}
		if len(chain) > maxRedirects {
			t.Fatalf("more than %d redirects: %v", maxRedirects, chain)
		}
		u, err := url.Parse(rawURL)
		require.NoError(t, err)
		to, err := u.Parse(next)
		require.NoError(t, err, "Location %q", next)
		rawURL = to.String()
	}
}

// cookieState is every cookie b holds for the addresses given, which a
// cookie of a narrower path (the portal's loop guard's) needs.
func cookieState(b *browser, addresses []string) string {
	lines := map[string]bool{}
	for _, address := range addresses {
		u, _ := url.Parse(address)
		for _, c := range b.jar.Cookies(u) {
			lines[u.Host+" "+c.Name+"="+c.Value] = true
		}
	}
	sorted := make([]string, 0, len(lines))
	for line := range lines {
		sorted = append(sorted, line)
	}
	sort.Strings(sorted)
	return strings.Join(sorted, "\n")
}

// formRedirect is the hidden redirect field of the login form in page.
var formRedirect = regexp.MustCompile(`<input type="hidden" name="redirect" value="([^"]*)">`)

// signIn signs b in as a browser does from startURL, a protected page of
// site host: the site sends it to the portal's login page with the address,
// the login form is posted there, and the portal sends it back to
// startURL, whose page it returns.
func (w *ssoWorld) signIn(b *browser, startURL, username, password string) response {
	w.t.Helper()
	t := w.t
	first := b.getPage(startURL)
	// nginx's error_page sends 302; Caddy's sites and forward_auth, 303.
	require.Contains(t, []int{http.StatusFound, http.StatusSeeOther}, first.StatusCode, "%s without a session: %s", startURL, first.body)
	require.Equal(t, w.loginURL()+"?redirect="+url.QueryEscape(startURL), first.Header.Get("Location"),
		"a site sends the browser to the portal with the address to come back to")

	page := b.getPage(first.Header.Get("Location"))
	require.Equal(t, http.StatusOK, page.StatusCode, page.body)
	m := formRedirect.FindStringSubmatch(page.body)
	require.NotNil(t, m, "the portal's login form carries the address: %s", page.body)
	require.Equal(t, startURL, html.UnescapeString(m[1]))

	form := url.Values{"username": {username}, "password": {password}, "redirect": {html.UnescapeString(m[1])}}
	req := webtest.FormRequest(t, w.loginURL(), form)
	req.Header.Set("Origin", w.url("auth", ""))
	back := b.do(req)
	require.Equal(t, http.StatusSeeOther, back.StatusCode, back.body)
	require.Equal(t, startURL, back.Header.Get("Location"), "the portal sends the browser back where it started")
	return b.getPage(startURL)
}

// recorder is the upstream of every site: it answers with the path and the
// user it was told of, and keeps each request's headers by path, so a test
// can ask what an upstream saw of a request it made.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]http.Header
}

func startRecorder(t *testing.T) *recorder {
	rec := &recorder{seen: map[string]http.Header{}}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen[r.URL.Path] = r.Header.Clone()
		rec.mu.Unlock()
		fmt.Fprintf(w, "upstream %s for %q", r.URL.Path, r.Header.Get("X-Auth-Username"))
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) hostPort() string { return strings.TrimPrefix(rec.srv.URL, "http://") }

// identity returns the identity headers the upstream got with the request
// for path, every X-Auth-* name in lower case with all its values, and
// whether the request reached it at all. A name with _ for - counts as the
// same name, as FastCGI and CGI read it (both are HTTP_X_AUTH_USERNAME).
func (rec *recorder) identity(path string) (map[string][]string, bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	h, ok := rec.seen[path]
	got := map[string][]string{}
	for name, values := range h {
		if lower := strings.ReplaceAll(strings.ToLower(name), "_", "-"); strings.HasPrefix(lower, "x-auth-") {
			got[lower] = append(got[lower], values...)
		}
	}
	return got, ok
}
