package pgsession

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What reaches the site behind the gate, and what its answers carry back:
// an upstream that records what it receives, and an attacker who tries to
// get the user's authority or the token past the gate.

// websocketAccept answers a WebSocket handshake, enough for a reverse proxy
// to switch protocols.
func websocketAccept(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "websocket" {
		fmt.Fprint(w, "not a websocket")
		return
	}
	sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:]))
	rw.Flush()
	time.Sleep(100 * time.Millisecond)
}

// A page on another site opens a WebSocket to the protected app: the
// browser attaches the session cookie to the handshake, a GET, so only the
// Origin tells it apart. It must be refused before the upstream sees it,
// while the site's own pages and trusted origins keep working.
func TestCrossSiteWebSocketHandshakesAreRefused(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	ws := newUpstream(t, websocketAccept)
	c := startSite(t, siteOptions{db: db.url, next: ws.proxy(), handler: "trusted_origins https://app.example.com"})
	self := "http://" + strings.TrimPrefix(c.url(""), "http://")

	handshake := func(header ...string) int {
		t.Helper()
		h := append([]string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13",
			"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Cookie", cookieHeader(token)}, header...)
		return sendRaw(t, http.MethodGet, c.url("/socket"), "", h...).StatusCode
	}
	for _, evil := range [][]string{
		{"Origin", "http://evil.example"},
		{"Origin", "null"},
		{"Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "websocket"},
		{"Origin", self, "Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "websocket"},
		{"Origin", "http://127.0.0.1.evil.example"},
	} {
		assert.Equal(t, http.StatusForbidden, handshake(evil...), "%v", evil)
	}
	assert.Empty(t, ws.requests(), "no cross-origin handshake reached the upstream")

	for _, fine := range [][]string{
		{"Origin", self},
		{"Origin", self, "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "websocket"},
		{"Origin", "https://app.example.com", "Sec-Fetch-Site", "cross-site"},
		{}, // not a browser: no Origin, no ambient authority to abuse
	} {
		assert.Equal(t, http.StatusSwitchingProtocols, handshake(fine...), "%v", fine)
	}
	seen := ws.requests()
	require.Len(t, seen, 4)
	assert.Equal(t, string(alice.ID), seen[0].Header.Get("X-Auth-User-Id"), "a same-origin socket knows its user")
}

// A chunked request declares an identity header as a trailer, hoping the
// upstream reads it next to, or instead of, the one the gate set.
func TestIdentityHeadersSmuggledAsTrailersAreRefused(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	c := startSite(t, siteOptions{db: db.url, next: up.proxy(), handler: "public /public/*"})

	send := func(path, trailer string) string {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(c.url(""), "http://"))
		require.NoError(t, err)
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nCookie: session=%s\r\nTransfer-Encoding: chunked\r\n"+
			"Trailer: %s\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n%s: forged\r\n\r\n",
			path, strings.TrimPrefix(c.url(""), "http://"), token, trailer, trailer)
		status, err := bufio.NewReader(conn).ReadString('\n')
		require.NoError(t, err)
		return strings.TrimSpace(status)
	}
	for _, name := range []string{"X-Auth-User-Id", "x-auth-username", "X-Auth-Groups", "x-auth-method", "X-Admin-Token"} {
		assert.Equal(t, "HTTP/1.1 400 Bad Request", send("/app", name), name)
		assert.Equal(t, "HTTP/1.1 400 Bad Request", send("/public/x", name), "%s on a public path", name)
	}
	assert.Empty(t, up.requests())
	assert.Equal(t, "HTTP/1.1 200 OK", send("/app", "X-Checksum"), "other trailers are the site's business")
}

// A protected page must not be kept by a shared cache or CDN, nor shown
// again by the back button after logout; static files behind the gate
// still revalidate with a 304 instead of downloading again.
func TestProtectedResponsesAreNotCachedWhereTheyMustNotBe(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		w.Header().Set("Content-Type", q.Get("type"))
		if cc := q.Get("cc"); cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		fmt.Fprint(w, "body")
	})
	c := startSite(t, siteOptions{db: db.url, next: up.proxy(), handler: "public /public/*"})
	off := startSite(t, siteOptions{db: db.url, next: up.proxy(), handler: "cache_control off"})

	cacheControl := func(c *testSite, path, contentType, cc string) string {
		t.Helper()
		resp := sendRaw(t, http.MethodGet, c.url(path+"?type="+urlQuery(contentType)+"&cc="+urlQuery(cc)), "", "Cookie", cookieHeader(token))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		return resp.Header.Get("Cache-Control")
	}
	for _, tc := range []struct{ contentType, upstream, want string }{
		{"text/html; charset=utf-8", "", "no-store"},
		{"text/html", "public, max-age=3600", "no-store"},
		{"application/xhtml+xml", "private, max-age=60", "no-store"},
		{"", "", "no-store"},          // Go would sniff the body, which may be HTML
		{"text html", "", "no-store"}, // so would a browser, for a malformed type
		{"text/css", "", "private, no-cache"},
		{"application/json", "public, max-age=600, s-maxage=3600", "private, max-age=600"},
		{"image/png", "max-age=86400, immutable", "private, max-age=86400, immutable"},
		{"text/css", "no-store", "no-store"},
		{"text/css", "private, no-cache", "private, no-cache"},
	} {
		assert.Equal(t, tc.want, cacheControl(c, "/app", tc.contentType, tc.upstream), "%s with %q", tc.contentType, tc.upstream)
	}
	assert.Equal(t, "public, max-age=3600", cacheControl(off, "/app", "text/html", "public, max-age=3600"), "cache_control off leaves the site's header")
	assert.Equal(t, "public, max-age=3600", cacheControl(c, "/public/x", "text/css", "public, max-age=3600"), "public paths are not the gate's")

	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "app.css"), []byte("body{}"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "index.html"), []byte("<p>secret</p>"), 0o644))
	files := startSite(t, siteOptions{db: db.url, next: fileServer(t, root)})
	css := sendRaw(t, http.MethodGet, files.url("/app.css"), "", "Cookie", cookieHeader(token))
	require.Equal(t, http.StatusOK, css.StatusCode)
	assert.Equal(t, "private, no-cache", css.Header.Get("Cache-Control"))
	etag := css.Header.Get("ETag")
	require.NotEmpty(t, etag, "file_server sends an ETag")
	again := sendRaw(t, http.MethodGet, files.url("/app.css"), "", "Cookie", cookieHeader(token), "If-None-Match", etag)
	assert.Equal(t, http.StatusNotModified, again.StatusCode, "a static file revalidates")
	assert.Equal(t, "private, no-cache", again.Header.Get("Cache-Control"), "and stays private")
	page := sendRaw(t, http.MethodGet, files.url("/"), "", "Cookie", cookieHeader(token))
	assert.Equal(t, "no-store", page.Header.Get("Cache-Control"), "a protected page stays out of the back button")
}

func urlQuery(s string) string { return url.QueryEscape(s) }

// The app behind the gate gets who the user is, never the session token:
// an app's logs, or a compromised upstream, could otherwise replay it.
// Every other cookie, and any Authorization the app uses itself, reach it
// as sent; a bearer admin token does not.
func TestTheTokenAndTheAdminTokenNeverReachTheUpstream(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	const admin = "an admin token that is long enough to pass"
	c := startSite(t, siteOptions{db: db.url, next: up.proxy(), handler: "public /public/*\nadmin_token \"" + admin + "\""})

	cases := []struct {
		path, cookie, authorization string
		wantCookie, wantAuth        string
	}{
		{"/app", "theme=dark; session=" + token + "; lang=en", "", "theme=dark; lang=en", ""},
		{"/app", "session=" + token, "Basic YWxpY2U6cHc=", "", "Basic YWxpY2U6cHc="},
		{"/app", "session=" + token + "; session_hint=1", "Bearer the app's own token", "session_hint=1", "Bearer the app's own token"},
		{"/app", "session=" + token, "Bearer " + admin, "", ""},
		{"/public/x", "session=" + token + "; theme=dark", "Bearer " + admin, "theme=dark", ""},
	}
	for _, tc := range cases {
		header := []string{"Cookie", tc.cookie}
		if tc.authorization != "" {
			header = append(header, "Authorization", tc.authorization)
		}
		resp := sendRaw(t, http.MethodGet, c.url(tc.path), "", header...)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	}
	seen := up.requests()
	require.Len(t, seen, len(cases))
	for i, tc := range cases {
		assert.Equal(t, tc.wantCookie, seen[i].Header.Get("Cookie"), "case %d: the Cookie header the upstream got", i)
		assert.Equal(t, tc.wantAuth, seen[i].Header.Get("Authorization"), "case %d: the Authorization header the upstream got", i)
		assert.NotContains(t, fmt.Sprint(seen[i].Header), token, "case %d", i)
		assert.NotContains(t, fmt.Sprint(seen[i].Header), admin, "case %d", i)
	}
	assert.Equal(t, string(alice.ID), seen[0].Header.Get("X-Auth-User-Id"))
}
