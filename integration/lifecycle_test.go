package integration

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What needs Caddy itself, run as a process: restarts and reloads, the
// access log, start-up failures and the Caddyfile's errors. How the handler
// behaves is tested in process, in the root package's site_*_test.go.

func TestSessionSurvivesRestartAndReload(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	// A pool of at most two connections: one that a reload doubled would
	// hold more.
	c := startCaddy(t, site{DatabaseURL: db.url, AppOptions: "max_connections 2"})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	token := b.cookie(c)

	const started = "listening for session changes"
	startedBefore := strings.Count(c.logs(), started)
	c.restart()
	resp := b.getPage(c.url("/"))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "still logged in after Caddy stops and starts")
	assert.Equal(t, "hello alice", resp.body)

	// Caddy serves HTTP before every app has started, and the pg_session
	// app, once it has found at start that the database is reached
	// directly, makes its pool's connections again to run prepared
	// statements. The connections are counted once that is done: the app
	// then listens for session changes.
	require.Eventually(t, func() bool { return strings.Count(c.logs(), started) > startedBefore },
		30*time.Second, 10*time.Millisecond, "the pg_session app started")
	before := backendPIDs(t, db)
	require.NotEmpty(t, before)
	for range 3 {
		c.reload(site{DatabaseURL: db.url, AppOptions: "max_connections 2", HandlerOptions: "public /health"})
		// The old config's server closes its idle connections as it stops;
		// a browser opens a new one, as this client now does.
		resp = b.getAfterReload(c.url("/"), "Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "still logged in after a config reload")
	}
	assert.Equal(t, token, b.cookie(c))
	after := backendPIDs(t, db)
	assert.Subset(t, after, before, "a reload keeps the pool's connections instead of dropping them")
	assert.LessOrEqual(t, len(after), 2, "a reload does not double the connections")
}

// backendPIDs lists the PostgreSQL backends the plugin holds open.
func backendPIDs(t *testing.T, db *database) []int {
	t.Helper()
	rows, err := db.pool.Query(context.Background(),
		`SELECT pid FROM pg_stat_activity WHERE application_name = 'caddy-pgsession' AND datname = current_database()`)
	require.NoError(t, err)
	var pids []int
	for rows.Next() {
		var pid int
		require.NoError(t, rows.Scan(&pid))
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

func TestAccessLogNamesTheUser(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	c := startCaddy(t, site{DatabaseURL: db.url})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	b.get(c.url("/report"))
	require.Eventually(t, func() bool {
		return strings.Contains(c.logs(), `"user_id":"`+string(alice.ID)+`"`)
	}, 10*time.Second, 50*time.Millisecond, "Caddy's access log shows user_id")
}

func TestFailedFirstConnectionIsAClearStartupError(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	out, err := caddyCommand(t, "run", `{
	admin off
	pg_session {
		database_url postgres://caddy:s3cret-pw@127.0.0.1:`+itoa(port)+`/app
	}
}
http://127.0.0.1:`+itoa(freePort(t))+` {
	pg_session
	respond "hi"
}
`)
	require.Error(t, err, "caddy must not start without its database")
	assert.Contains(t, out, "connecting to PostgreSQL at 127.0.0.1:"+itoa(port)+"/app")
	assert.NotContains(t, out, "s3cret-pw", "the password is never printed")
	assert.NotContains(t, out, "panic")
}

func TestCaddyfileErrorsNameFileLineAndOption(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, handler, want string
	}{
		{"unknown option", "colour blue", `unknown pg_session option "colour"`},
		{"bad duration", "lifetime 7x", `lifetime: "7x" is not a duration`},
		{"same_site none without secure", "same_site none", "same_site none needs secure on"},
		{"bad on/off", "registration yes", `registration must be on or off, not "yes"`},
		// A user clicking every 30 s would be logged out after a minute.
		{"renewal longer than half the idle timeout", "renewal_interval 5m\n\t\tidle_timeout 1m",
			"renewal_interval 5m0s is more than half of idle_timeout 1m0s"},
		// The directive meets the global option only in the adapter, which
		// knows the line; at provisioning the error would have none.
		{"second_factor required without secrets_key", "second_factor required",
			"second_factor required needs secrets_key in the pg_session global option"},
		{"verify_email without smtp", "verify_email on", "verify_email on needs smtp in the pg_session global option"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := caddyCommand(t, "validate", `{
	pg_session {
		database_url postgres://127.0.0.1/app
	}
}
http://localhost {
	pg_session {
		`+tc.handler+`
	}
	file_server
}
`)
			require.Error(t, err)
			assert.Contains(t, out, tc.want)
			assert.Contains(t, out, "/Caddyfile:8", "the error names the file and the option's line")
		})
	}

	t.Run("handler without the global option", func(t *testing.T) {
		t.Parallel()
		out, err := caddyCommand(t, "validate", "http://localhost {\n\tpg_session\n\tfile_server\n}\n")
		require.Error(t, err)
		assert.Contains(t, out, "add a global option block")
		assert.Regexp(t, `add a global option block .*, at \S*/Caddyfile:2`, out,
			"the adapter's warning names the file and the directive's line")
	})
	t.Run("valid config validates without a database", func(t *testing.T) {
		t.Parallel()
		out, err := caddyCommand(t, "validate", `{
	pg_session {
		database_url postgres://nobody@127.0.0.1:1/none
		schema site_a
		cleanup_interval 30m
	}
}
http://localhost {
	pg_session {
		public /assets/* /favicon.ico
		lifetime 7d
		registration off
	}
	file_server
}
`)
		require.NoError(t, err, out)
		assert.Contains(t, out, "Valid configuration")
	})
}

// caddyCommand runs `caddy <verb> --config Caddyfile` with the given Caddyfile
// and returns everything it printed.
func caddyCommand(t *testing.T, verb, caddyfile string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	require.NoError(t, os.WriteFile(path, []byte(caddyfile), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBinary, verb, "--config", path, "--adapter", "caddyfile")
	cmd.Dir = dir
	// DATABASE_URL is the default database_url: the runner's must not leak in.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "DATABASE_URL=") })
	cmd.Env = append(env, "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	out, err := cmd.CombinedOutput()
	// Caddy logs JSON; unescaping its quotes lets tests look for messages as a user reads them.
	return strings.ReplaceAll(string(out), `\"`, `"`), err
}

func itoa(n int) string { return strconv.Itoa(n) }
