package pgsession

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"testing"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests' clients: a browser with a cookie jar, bare requests, and the answers they get.

// newTransport is a transport of a client's own, so closing one test's
// servers never touches another test's connections. TLS is not verified:
// the sites use httptest's certificate, as a site with `tls internal`
// uses one no browser trusts.
func newTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	tr.MaxIdleConnsPerHost = 100
	return tr
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see each 303.
type browser struct {
	t      *testing.T
	client *http.Client
	jar    *cookiejar.Jar
}

func newBrowser(t *testing.T) *browser {
	tr := newTransport()
	t.Cleanup(tr.CloseIdleConnections)
	client, jar := webtest.NewBrowser(t, tr)
	return &browser{t: t, jar: jar, client: client}
}

// reply is a finished response with its body read.
type reply struct {
	*http.Response
	body string
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	return webtest.Decode[map[string]any](t, r.body)
}

// list decodes a JSON array of objects.
func (r reply) list(t *testing.T) []map[string]any {
	t.Helper()
	return webtest.Decode[[]map[string]any](t, r.body)
}

func (b *browser) do(req *http.Request) reply {
	b.t.Helper()
	resp, body := webtest.Do(b.t, b.client, req)
	return reply{resp, body}
}

func (b *browser) get(rawURL string, header ...string) reply {
	b.t.Helper()
	return b.do(webtest.Request(b.t, http.MethodGet, rawURL, nil, header...))
}

// getPage is a browser navigation: it accepts HTML.
func (b *browser) getPage(rawURL string) reply {
	return b.get(rawURL, "Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
}

func (b *browser) postJSON(rawURL string, v any) reply {
	b.t.Helper()
	return b.do(webtest.JSONRequest(b.t, http.MethodPost, rawURL, v))
}

func (b *browser) postForm(rawURL string, form url.Values) reply {
	b.t.Helper()
	return b.do(webtest.FormRequest(b.t, rawURL, form))
}

// send makes a request with an optional JSON body and header pairs.
func (b *browser) send(method, rawURL string, body any, header ...string) reply {
	b.t.Helper()
	return b.do(webtest.JSONRequest(b.t, method, rawURL, body, header...))
}

// login logs in with JSON and fails the test unless it works.
func (b *browser) login(s *testSite, username, password string) {
	b.t.Helper()
	resp := b.postJSON(s.url("/api/auth/login"), map[string]string{"username": username, "password": password})
	require.Equal(b.t, http.StatusOK, resp.StatusCode, resp.body)
}

// cookie returns the session cookie the browser holds for s, or "".
func (b *browser) cookie(s *testSite) string {
	return webtest.SessionCookie(b.jar, s.url("/"), "session")
}

// setCookie puts a session cookie into the browser, as a copied cookie would be.
func (b *browser) setCookie(s *testSite, value string) {
	u, _ := url.Parse(s.url("/"))
	b.jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: value, Path: "/"}})
}

// attackerClient has no cookie jar and does not follow redirects.
var attackerClient = webtest.NewBare(newTransport())

// sendRaw sends one request with body (none when empty) and header pairs,
// exactly as given: no cookie jar.
func sendRaw(t *testing.T, method, rawURL, body string, header ...string) reply {
	t.Helper()
	resp, data := webtest.SendRaw(t, attackerClient, method, rawURL, body, header...)
	return reply{resp, data}
}

func jsonText(t *testing.T, v any) string {
	t.Helper()
	return webtest.JSONText(t, v)
}

// postLoginJSON posts a JSON login as a script would, with extra header pairs.
func postLoginJSON(t *testing.T, s *testSite, username, password string, header ...string) reply {
	t.Helper()
	body := jsonText(t, map[string]string{"username": username, "password": password})
	return sendRaw(t, http.MethodPost, s.url("/api/auth/login"), body, append([]string{"Content-Type", "application/json"}, header...)...)
}

// cookieHeader is the Cookie header carrying a session token.
func cookieHeader(token string) string { return "session=" + token }

// gateStatus asks for a page behind the gate with the session of token.
func gateStatus(t *testing.T, s *testSite, token string) int {
	t.Helper()
	return sendRaw(t, http.MethodGet, s.url("/page"), "", "Cookie", cookieHeader(token)).StatusCode
}

// meStatus asks who the session of token is: 200 while it lives, 401 after.
func meStatus(t *testing.T, s *testSite, token string) int {
	t.Helper()
	return sendRaw(t, http.MethodGet, s.url("/api/auth/me"), "", "Cookie", cookieHeader(token)).StatusCode
}

// assertRetryAfter asserts that resp carries Retry-After as a positive
// number of seconds no longer than maxSeconds, and returns it.
func assertRetryAfter(t *testing.T, resp reply, maxSeconds int) int {
	t.Helper()
	v := resp.Header.Get("Retry-After")
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "Retry-After %q is not a whole number of seconds", v)
	assert.Positive(t, n, "Retry-After")
	assert.LessOrEqual(t, n, maxSeconds, "Retry-After")
	return n
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
