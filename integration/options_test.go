package integration

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddytest"
)

func TestCookieOptions(t *testing.T) {
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startCaddy(t, site{DatabaseURL: db.url, HandlerOptions: `cookie_name app_sid
		lifetime 2h
		same_site strict`})
	b := newBrowser(t)
	resp := b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	setCookie := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"app_sid=", "SameSite=Strict", "HttpOnly", "Path=/"} {
		assert.Contains(t, setCookie, attr)
	}
	assert.Equal(t, http.StatusOK, b.get(c.url("/api/auth/me")).StatusCode, "the renamed cookie is the one read")
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.sessions
		WHERE expires_at BETWEEN now() + interval '119 minutes' AND now() + interval '121 minutes'`))
}

func TestCookieIsSecureOverHTTPS(t *testing.T) {
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	port := freePort(t)
	caddyfile := fmt.Sprintf(`{
	admin off
	skip_install_trust
	pg_session {
		database_url %s
	}
}
https://127.0.0.1:%d {
	tls internal
	pg_session {
		cookie_name __Host-session
	}
	respond "hello {http.auth.user.username}"
}
`, db.url, port)
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	insecure := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	caddytest.Start(t, caddyBinary, caddyfile, url+"/api/auth/me", 0)

	b := newBrowser(t)
	b.client.Transport = insecure
	resp := b.postJSON(url+"/api/auth/login", map[string]string{"username": "alice", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	setCookie := resp.Header.Get("Set-Cookie")
	assert.Contains(t, setCookie, "__Host-session=")
	assert.Contains(t, setCookie, "Secure", "a login over HTTPS gets a Secure cookie")
	assert.NotContains(t, setCookie, "Domain")
	resp = b.get(url + "/")
	assert.Equal(t, "hello alice", resp.body)
}

func TestOwnLoginTemplate(t *testing.T) {
	db := newDatabase(t)
	path := filepath.Join(t.TempDir(), "login.html")
	require.NoError(t, os.WriteFile(path, []byte(`<!doctype html><title>ACME sign-in</title>
<form method="post" action="{{.Action}}"><input name="username" value="{{.Username}}"><input type="password" name="password">
<input type="hidden" name="redirect" value="{{.Redirect}}">{{if .Error}}<p class="err">{{.Error}}</p>{{end}}</form>`), 0o600))
	c := startCaddy(t, site{DatabaseURL: db.url, HandlerOptions: "login_template " + path})
	b := newBrowser(t)
	resp := b.getPage(c.url("/login?redirect=/x"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.body, "ACME sign-in")
	assert.Contains(t, resp.body, `name="redirect" value="/x"`)
	resp = b.postForm(c.url("/login"), map[string][]string{"username": {"nobody"}, "password": {"whatever pw"}})
	assert.Contains(t, resp.body, `<p class="err">Invalid username or password</p>`)

	out, err := caddyCommand(t, "validate", strings.ReplaceAll(renderCaddyfile(t, site{
		DatabaseURL: db.url, HandlerOptions: "login_template " + path + ".missing", Port: 1, AdminPort: 2,
	}), "\t", " "))
	require.Error(t, err, "a missing template file stops validate")
	assert.Contains(t, out, "login.html.missing")
}

func TestJSONConfig(t *testing.T) {
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	port := freePort(t)
	config := fmt.Sprintf(`{
	"admin": {"disabled": true},
	"apps": {
		"pg_session": {"database_url": %q, "cleanup_interval": "30m"},
		"http": {"servers": {"srv0": {
			"listen": ["127.0.0.1:%d"],
			"automatic_https": {"disable": true},
			"routes": [{"handle": [
				{"handler": "pg_session", "public": ["/open/*"], "lifetime": "1h"},
				{"handler": "static_response", "body": "hello {http.auth.user.username}"}
			]}]
		}}}
	}
}`, db.url, port)
	dir := t.TempDir()
	path := filepath.Join(dir, "caddy.json")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	caddytest.StartWithArgs(t, caddyBinary, base+"/api/auth/me", "run", "--config", path)

	b := newBrowser(t)
	assert.Equal(t, http.StatusOK, b.get(base+"/open/x").StatusCode)
	assert.Equal(t, http.StatusUnauthorized, b.get(base+"/closed").StatusCode)
	resp := b.postJSON(base+"/api/auth/login", map[string]string{"username": "alice", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hello alice", b.get(base+"/closed").body)
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.sessions WHERE expires_at < now() + interval '61 minutes'`),
		"the JSON config's lifetime applies")
}
