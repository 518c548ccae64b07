package pgsession

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
	"github.com/pgsession/caddy-pgsession/store"
)

// What the route-level tests of signing in with an identity provider
// (site_identity_*_test.go) share: sites whose global option holds a
// provider, a browser's steps through a sign-in, and what a person sees
// at its end.

// startProviderSite starts a site with opts whose global option also holds
// the OpenID provider p as identity_provider test, with more lines of that
// block, lets p send browsers back to the site's callback, and waits until
// the site has found p.
func startProviderSite(t *testing.T, opts siteOptions, p *oidctest.Provider, more string) *testSite {
	t.Helper()
	opts.app += "\n" + oidcBlock(p, more)
	s := startSite(t, opts)
	p.AllowRedirectURI(t, s.url("/login/callback/test"))
	waitProviderAvailable(t, s)
	return s
}

// linkedAlice is a provider knowing alice-sub (alice@example.com,
// verified), a database whose alice is linked to it, and a site with the
// provider as identity_provider test and more lines of its block.
func linkedAlice(t *testing.T, more string) (*oidctest.Provider, *testDB, *testSite) {
	t.Helper()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "alice-sub", Email: "alice@example.com", EmailVerified: true})
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	db.linkIdentity(t, alice, "alice-sub", "alice@example.com")
	return p, db, startProviderSite(t, siteOptions{db: db.url}, p, more)
}

// oidcBlock is the identity_provider test block of p, with more lines.
func oidcBlock(p *oidctest.Provider, more string) string {
	return "identity_provider test {\n\tissuer " + p.Issuer() + "\n\tclient_id " + p.ClientID() +
		"\n\tclient_secret " + p.ClientSecret() + "\n\t" + more + "\n}"
}

// githubSite starts a site whose global option holds the GitHub stand-in g
// as identity_provider gh, with more lines of that block.
func githubSite(t *testing.T, db *testDB, g *oidctest.GitHub, more string) *testSite {
	t.Helper()
	s := startSite(t, siteOptions{db: db.url, app: "identity_provider gh {\n\tgithub\n\tclient_id " + g.ClientID() +
		"\n\tclient_secret " + g.ClientSecret() + "\n\tgithub_url " + g.WebURL() + "\n\tgithub_api_url " + g.APIURL() +
		"\n\t" + more + "\n}"})
	g.AllowRedirectURI(t, s.url("/login/callback/gh"))
	waitProviderAvailable(t, s)
	return s
}

// waitProviderAvailable waits until every provider of s can be used.
func waitProviderAvailable(t *testing.T, s *testSite) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, p := range s.app.Providers() {
			if ok, _ := p.Available(); !ok {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "a provider never became available")
}

// begin presses the login page's button of provider, coming back to
// redirect, and returns where the site sends the browser: the provider's
// authorization URL.
func (b *browser) begin(s *testSite, provider, redirect string) string {
	b.t.Helper()
	resp := b.getPage(s.url("/login/with/" + provider + "?redirect=" + url.QueryEscape(redirect)))
	require.Equal(b.t, http.StatusSeeOther, resp.StatusCode, "pressing the %s button: %s", provider, gist(resp.body))
	return resp.Header.Get("Location")
}

// signInWith signs in with a provider of the site: the button, the
// provider's login form as user (a subject, or a GitHub login), and the
// site's answer to the callback.
func (b *browser) signInWith(s *testSite, provider, user, redirect string) reply {
	b.t.Helper()
	return b.getPage(oidctest.SignIn(b.t, nil, b.begin(s, provider, redirect), user).String())
}

// me is what GET /api/auth/me says of the browser's session: its status,
// and the username and auth_method when it is signed in.
func (b *browser) me(s *testSite) (status int, username, method string) {
	b.t.Helper()
	resp := b.get(s.url("/api/auth/me"))
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, "", ""
	}
	me := resp.json(b.t)
	username, _ = me["username"].(string)
	method, _ = me["auth_method"].(string)
	return resp.StatusCode, username, method
}

// assertSignedInAs asserts that the browser's session is username's,
// signed in by method.
func assertSignedInAs(t *testing.T, b *browser, s *testSite, username, method string) {
	t.Helper()
	status, name, how := b.me(s)
	assert.Equal(t, http.StatusOK, status, "GET /api/auth/me: the browser should be signed in as %s", username)
	assert.Equal(t, username, name, "signed in as")
	assert.Equal(t, method, how, "the session's auth_method")
}

// assertNotSignedIn asserts that the browser holds no session for s.
func assertNotSignedIn(t *testing.T, b *browser, s *testSite) {
	t.Helper()
	assert.Empty(t, b.cookie(s), "no session cookie")
	status, name, _ := b.me(s)
	assert.Equal(t, http.StatusUnauthorized, status, "GET /api/auth/me: not signed in, but signed in as %q", name)
}

// assertFlowPage asserts that resp is the page that ends a sign-in with
// provider: status, heading, a link that starts the sign-in again and one
// back to the login page.
func assertFlowPage(t *testing.T, resp reply, provider string, status int, heading string) {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, "the page: %s", gist(resp.body))
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	assertPageHas(t, resp.body, "<h1>"+html.EscapeString(heading)+"</h1>", "the heading")
	assert.NotEmpty(t, startAgainLink(resp, provider), "a link that starts signing in with %s again: %s", provider, gist(resp.body))
	assertPageHas(t, resp.body, `href="/login"`, "a link back to the login page")
}

// startAgainLink is the page's link that starts a sign-in with provider,
// unescaped, or "".
func startAgainLink(resp reply, provider string) string {
	m := regexp.MustCompile(`href="(/login/with/` + regexp.QuoteMeta(provider) + `\?redirect=[^"]*)"`).FindStringSubmatch(resp.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// passwordSignIn signs in with the login page's form, failing the test
// unless it lands on redirect signed in.
func passwordSignIn(t *testing.T, b *browser, s *testSite, username, password, redirect string) {
	t.Helper()
	resp := b.postForm(s.url("/login"), url.Values{"username": {username}, "password": {password}, "redirect": {redirect}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the password form: %s", gist(resp.body))
	assert.Equal(t, redirect, resp.Header.Get("Location"))
	assert.Equal(t, "hello "+username, b.getPage(s.url(redirect)).body)
}

// linkIdentity links the provider test's subject to u straight in the
// database, as an earlier sign-in would have.
func (db *testDB) linkIdentity(t *testing.T, u *store.User, subject, email string) {
	t.Helper()
	require.NoError(t, db.store.LinkIdentity(context.Background(), u.ID, store.Identity{Provider: "test", Subject: subject, Email: email}))
}

// dialingAt is a browser with b's cookies whose connections to from's
// address reach to's server instead, as a load balancer in front of two
// servers would send them: the URLs, the Host header and the cookies stay
// from's.
func (b *browser) dialingAt(from, to *testSite) *browser {
	b.t.Helper()
	fromAddr, toAddr := hostPort(b.t, from), hostPort(b.t, to)
	tr := newTransport()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == fromAddr {
			addr = toAddr
		}
		return dialer.DialContext(ctx, network, addr)
	}
	b.t.Cleanup(tr.CloseIdleConnections)
	client := *b.client
	client.Transport = tr
	return &browser{t: b.t, jar: b.jar, client: &client}
}

// hostPort is the address s serves at, 127.0.0.1:port.
func hostPort(t *testing.T, s *testSite) string {
	t.Helper()
	u, err := url.Parse(s.url(""))
	require.NoError(t, err)
	return u.Host
}

// servedPath says whether s answered a request whose URI begins with prefix.
func (s *testSite) servedPath(prefix string) bool {
	for line := range strings.Lines(s.accessLog()) {
		if _, uri, ok := strings.Cut(line, " "); ok && strings.HasPrefix(uri, prefix) {
			return true
		}
	}
	return false
}

var gistParts = regexp.MustCompile(`(?s)<h1[^>]*>(.*?)</h1>|<p[^>]*\bclass="(?:lead|alert|notice)"[^>]*>(.*?)</p>`)

// gist is what a person reads first on a page: its heading, lead
// paragraphs and alerts, for a failure's message; a body that is no page
// of the plugin's is shown as it is, cut short.
func gist(body string) string {
	var parts []string
	for _, m := range gistParts.FindAllStringSubmatch(body, -1) {
		if text := strings.TrimSpace(html.UnescapeString(m[1] + m[2])); text != "" {
			parts = append(parts, text)
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%.300s", markup(body))
	}
	return "“" + strings.Join(parts, " / ") + "”"
}

// assertPageHas asserts that the page's markup holds text, and shows the
// page's gist when it does not.
func assertPageHas(t *testing.T, body, text string, why ...any) bool {
	t.Helper()
	return assert.True(t, strings.Contains(body, text), "the page should hold %q%s; it says %s", text, whyText(why), gist(body))
}

// assertPageLacks asserts that the page's markup does not hold text.
func assertPageLacks(t *testing.T, body, text string, why ...any) bool {
	t.Helper()
	return assert.False(t, strings.Contains(body, text), "the page should not hold %q%s; it says %s", text, whyText(why), gist(body))
}

func whyText(why []any) string {
	if len(why) == 0 {
		return ""
	}
	return " (" + fmt.Sprint(why...) + ")"
}
