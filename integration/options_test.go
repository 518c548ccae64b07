package integration

import (
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

// A login_template that cannot be read stops caddy validate, naming the file.
func TestMissingLoginTemplateStopsValidate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "login.html.missing")
	out, err := caddyCommand(t, "validate", strings.ReplaceAll(renderCaddyfile(t, site{
		DatabaseURL: "postgres://127.0.0.1/app", HandlerOptions: "login_template " + path, Port: 1, AdminPort: 2,
	}), "\t", " "))
	require.Error(t, err, "a missing template file stops validate")
	assert.Contains(t, out, "login.html.missing")
}

func TestJSONConfig(t *testing.T) {
	t.Parallel()
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
