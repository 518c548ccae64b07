package pgsession

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCookieOptions(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: `cookie_name app_sid
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
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, https: true, handler: "cookie_name __Host-session"})

	b := newBrowser(t)
	resp := b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	setCookie := resp.Header.Get("Set-Cookie")
	assert.Contains(t, setCookie, "__Host-session=")
	assert.Contains(t, setCookie, "Secure", "a login over HTTPS gets a Secure cookie")
	assert.NotContains(t, setCookie, "Domain")
	resp = b.get(c.url("/"))
	assert.Equal(t, "hello alice", resp.body)
}

func TestOwnLoginTemplate(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	path := filepath.Join(t.TempDir(), "login.html")
	require.NoError(t, os.WriteFile(path, []byte(`<!doctype html><title>ACME sign-in</title>
<form method="post" action="{{.Action}}"><input name="username" value="{{.Username}}"><input type="password" name="password">
<input type="hidden" name="redirect" value="{{.Redirect}}">{{if .Error}}<p class="err">{{.Error}}</p>{{end}}</form>`), 0o600))
	c := startSite(t, siteOptions{db: db.url, handler: "login_template " + path})
	b := newBrowser(t)
	resp := b.getPage(c.url("/login?redirect=/x"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.body, "ACME sign-in")
	assert.Contains(t, resp.body, `name="redirect" value="/x"`)
	resp = b.postForm(c.url("/login"), map[string][]string{"username": {"nobody"}, "password": {"whatever pw"}})
	assert.Contains(t, resp.body, `<p class="err">Invalid username or password</p>`)
}
