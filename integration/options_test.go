package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
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

// caddy validate checks a config on a machine that need not have the
// variables of the one that runs Caddy: an unset {env.DATABASE_URL} passes,
// and caddy run then says what is missing and why validate did not.
func TestValidatePassesWithoutTheDatabaseURL(t *testing.T) {
	t.Parallel()
	caddyfile := strings.ReplaceAll(renderCaddyfile(t, site{DatabaseURL: "{env.DATABASE_URL}", Port: freePort(t), AdminPort: freePort(t)}), "\t", " ")
	out, err := caddyCommand(t, "validate", caddyfile)
	require.NoError(t, err, "validate does not need the database URL:\n%s", out)
	assert.Contains(t, out, "Valid configuration")

	out, err = caddyCommand(t, "run", caddyfile)
	require.Error(t, err, "caddy run cannot start without the database URL")
	assert.Contains(t, out, "database_url is empty: set it in the pg_session global option or set DATABASE_URL")
	assert.Contains(t, out, "caddy validate does not connect to the database")
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
	caddyproc.StartWithArgs(t, caddyBinary, base+"/api/auth/me", "run", "--config", path)

	b := newBrowser(t)
	assert.Equal(t, http.StatusOK, b.get(base+"/open/x").StatusCode)
	assert.Equal(t, http.StatusUnauthorized, b.get(base+"/closed").StatusCode)
	resp := b.postJSON(base+"/api/auth/login", map[string]string{"username": "alice", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hello alice", b.get(base+"/closed").body)
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.sessions WHERE expires_at < now() + interval '61 minutes'`),
		"the JSON config's lifetime applies")
}

// JSON refuses a 0 the Caddyfile refuses: the field cannot tell 0 from
// unset, but a 0 written down is not quietly taken for the default.
func TestValidateRefusesAZeroJSONAsTheCaddyfileDoes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "caddy.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"apps": {
	"pg_session": {"database_url": "postgres://127.0.0.1/app"},
	"http": {"servers": {"srv0": {"listen": [":0"], "routes": [{"handle": [
		{"handler": "pg_session", "lifetime": 0}
	]}]}}}
}}`), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, caddyBinary, "validate", "--config", path).CombinedOutput()
	require.Error(t, err, "%s", out)
	assert.Contains(t, string(out), `lifetime must be positive, not \"0\"`)
}
