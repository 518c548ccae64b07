package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// Through each way a site can be gated: the plugin on the site's own
// Caddy (docs), Caddy's forward_auth on a Caddy without it (wiki), and
// nginx's auth_request (app), each asking the portal's verify endpoint
// with the recipes of docs/forward-auth.md.

// gatedSite is one site of the world and how to reach it.
type gatedSite struct {
	name string
	url  func(path string) string
	// redirect is the status a browser without a session gets: nginx's
	// error_page answers 302, Caddy 303.
	redirect int
}

func (w *ssoWorld) gatedSites() []gatedSite {
	return []gatedSite{
		{"the gate on docs", func(path string) string { return w.url("docs", path) }, http.StatusSeeOther},
		{"Caddy forward_auth on wiki", w.wiki, http.StatusSeeOther},
		{"nginx auth_request on app", w.app, http.StatusFound},
	}
}

// A browser signs in once, at the portal, from a protected page of any
// site, behind a proxy or not: the site sends it there with its address,
// the portal signs it in and sends it back, and then every other site and
// the portal let it in too, without signing in again, with the user's
// identity for the upstream. The cookie is the domain's.
func TestSSOSignInOnceReachesEverySite(t *testing.T) {
	w := startSSO(t)
	alice := w.db.addUser(t, "alice", ssoPassword)
	w.db.join(t, alice, "staff")
	for i, start := range w.gatedSites() {
		t.Run(start.name, func(t *testing.T) {
			b := newSSOBrowser(t)
			page := w.signIn(b, start.url(fmt.Sprintf("/start/%d?tab=2", i)), "alice", ssoPassword)
			require.Equal(t, http.StatusOK, page.StatusCode, page.body)
			assert.Equal(t, fmt.Sprintf(`upstream /start/%d for "alice"`, i), page.body)
			for j, other := range w.gatedSites() {
				path := fmt.Sprintf("/then/%d/%d", i, j)
				page := b.getPage(other.url(path))
				assert.Equal(t, fmt.Sprintf(`upstream %s for "alice"`, path), page.body, "%s after signing in on %s", other.name, start.name)
				got, _ := w.upstream.identity(path)
				assert.Equal(t, map[string][]string{"x-auth-user-id": {string(alice.ID)}, "x-auth-username": {"alice"},
					"x-auth-groups": {"staff"}, "x-auth-method": {"password"}}, got, other.name)
			}
			assert.Equal(t, "portal home of alice", b.getPage(w.url("auth", "/")).body)
			token := webtest.SessionCookie(b.jar, w.url("auth", "/"), "session")
			assert.NotEmpty(t, token)
			assert.Equal(t, token, webtest.SessionCookie(b.jar, "http://any.example.test/", "session"),
				"the cookie is the domain's: every host under example.test gets it")
		})
	}
}

// smuggled are identity headers a client sends of its own, in the
// canonical case, in others, and twice, as Go would not send them; and
// with _ for -, which FastCGI and CGI read as the same names (Caddy's
// php_fastcgi makes HTTP_X_AUTH_USERNAME of X_Auth_Username too).
var smuggled = map[string][]string{
	"X-Auth-User-Id":  {"00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"},
	"x-auth-username": {"root"},
	"X-AUTH-USERNAME": {"admin"},
	"X-Auth-Groups":   {"admins", "staff,admins"},
	"x-Auth-Method":   {"passkey"},
	"X-Auth-method":   {"password+totp"},
	"X_Auth_Username": {"root"},
	"x_auth_user_id":  {"00000000-0000-0000-0000-000000000003"},
	"X-Auth_Groups":   {"admins"},
	"X_Auth-Method":   {"passkey"},
}

// smuggle sends a GET for rawURL with the smuggled headers, the cookie (if
// any) and Accept, and returns the answer.
func smuggle(t *testing.T, rawURL, cookie, accept string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	require.NoError(t, err)
	for name, values := range smuggled {
		req.Header[name] = values
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	req.Header.Set("Accept", accept)
	resp, err := ssoBare().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return response{Response: resp}
}

// No identity header a client sends reaches an upstream through any of the
// three ways: signed in, the upstream sees only the portal's values (and no
// groups for a user in none); signed out, the request is refused before it
// reaches the upstream; on a public path, the upstream sees none at all.
func TestSSOIdentityHeadersNeverReachUpstream(t *testing.T) {
	w := startSSO(t)
	alice, bob := w.db.addUser(t, "alice", ssoPassword), w.db.addUser(t, "bob", ssoPassword)
	w.db.join(t, alice, "staff")
	aliceToken, _ := sessionInDB(t, w.db, alice)
	bobToken, _ := sessionInDB(t, w.db, bob)
	identity := func(u *store.User, groups ...string) map[string][]string {
		id := map[string][]string{"x-auth-user-id": {string(u.ID)}, "x-auth-username": {u.Username}, "x-auth-method": {"password"}}
		if len(groups) > 0 {
			id["x-auth-groups"] = groups
		}
		return id
	}
	const browser, script = "text/html", "application/json"
	for i, site := range w.gatedSites() {
		t.Run(site.name, func(t *testing.T) {
			at := func(kind string) string { return fmt.Sprintf("/%s/%d", kind, i) }
			resp := smuggle(t, site.url(at("alice")), "session="+aliceToken, script)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			got, _ := w.upstream.identity(at("alice"))
			assert.Equal(t, identity(alice, "staff"), got, "signed in: only the portal's values")

			resp = smuggle(t, site.url(at("bob")), "session="+bobToken, script)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			got, _ = w.upstream.identity(at("bob"))
			assert.Equal(t, identity(bob), got, "signed in with no group: no X-Auth-Groups at all")

			resp = smuggle(t, site.url(at("script")), "", script)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a script without a session")
			resp = smuggle(t, site.url(at("browser")), "", browser)
			assert.Equal(t, site.redirect, resp.StatusCode, "a browser without a session")
			assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), w.loginURL()+"?redirect="), resp.Header.Get("Location"))
			resp = smuggle(t, site.url(at("ended")), "session="+w.endedSession(alice), script)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a script with a signed-out session")
			for _, kind := range []string{"script", "browser", "ended"} {
				_, reached := w.upstream.identity(at(kind))
				assert.False(t, reached, "%s: a refused request reached the upstream", kind)
			}

			for _, cookie := range []string{"", "session=" + aliceToken} {
				path := at("public/" + fmt.Sprint(len(cookie)))
				resp = smuggle(t, site.url(path), cookie, script)
				require.Equal(t, http.StatusOK, resp.StatusCode, "a public path")
				got, reached := w.upstream.identity(path)
				assert.True(t, reached)
				assert.Empty(t, got, "a public path (cookie %q): no identity header at all", cookie)
			}
		})
	}
}

// What a proxy asks the portal about is the request it serves, never what
// a client says in forwarded headers of its own: a path the rules refuse
// stays refused whatever X-Forwarded-Uri or X-Original-URL the client
// sends, and a browser is sent to sign in with its real address. (docs is
// left out: the tests' client is on 127.0.0.1, which the portal's Caddy
// trusts as a proxy, so there it may say what it likes.)
func TestSSOProxiesDecideOnTheRequestNotTheClientsForwardedHeaders(t *testing.T) {
	w := startSSO(t)
	alice, root := w.db.addUser(t, "alice", ssoPassword), w.db.addAdmin(t, "root", ssoPassword)
	aliceToken, _ := sessionInDB(t, w.db, alice)
	rootToken, _ := sessionInDB(t, w.db, root)
	for i, site := range w.gatedSites()[1:] {
		t.Run(site.name, func(t *testing.T) {
			lies := []string{
				"X-Forwarded-Uri", "/public/x",
				"X-Forwarded-Host", fmt.Sprintf("docs.example.test:%d", w.port),
				"X-Forwarded-Method", "OPTIONS",
				"X-Forwarded-Proto", "https",
			}
			send := func(path, cookie, accept string) response {
				header := append([]string{"Accept", accept}, lies...)
				if cookie != "" {
					header = append(header, "Cookie", cookie)
				}
				resp, body := webtest.SendRaw(t, ssoBare(), http.MethodGet, site.url(path), "", header...)
				return response{resp, body}
			}
			path := fmt.Sprintf("/admin/%d", i)
			resp := send(path, "session="+aliceToken, "application/json")
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, "alice is no admin, whatever the client says it asks for")
			_, reached := w.upstream.identity(path)
			assert.False(t, reached)

			resp = send(path, "session="+rootToken, "application/json")
			assert.Equal(t, http.StatusOK, resp.StatusCode, "an admin may")

			private := site.url(fmt.Sprintf("/private/%d", i))
			resp = send(fmt.Sprintf("/private/%d", i), "", "text/html")
			assert.Equal(t, site.redirect, resp.StatusCode)
			assert.Equal(t, w.loginURL()+"?redirect="+url.QueryEscape(private), resp.Header.Get("Location"),
				"the browser is to come back to where it was")

			// nginx sets X-Original-URL over the client's; Caddy's
			// forward_auth passes the client's on beside its own
			// X-Forwarded-Uri, and the endpoint refuses the two that
			// disagree rather than guess.
			lies = append(lies, "X-Original-URL", fmt.Sprintf("http://docs.example.test:%d/public/x", w.port))
			resp = send(path, "session="+rootToken, "application/json")
			assert.Contains(t, []int{http.StatusOK, http.StatusBadRequest}, resp.StatusCode)
			lied := fmt.Sprintf("/admin/lied-%d", i)
			resp = send(lied, "session="+aliceToken, "application/json")
			assert.Contains(t, []int{http.StatusForbidden, http.StatusBadRequest}, resp.StatusCode,
				"alice is no admin, whatever the client says it asks for")
			_, reached = w.upstream.identity(lied)
			assert.False(t, reached)
		})
	}
}
