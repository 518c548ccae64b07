package integration

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// Sessions live in PostgreSQL, so they outlast Caddy and are shared by every Caddy on the database.

func TestExpiredSessionIsRefused(t *testing.T) {
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startCaddy(t, site{DatabaseURL: db.url})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	token := b.cookie(c)

	db.exec(t, `UPDATE pgsession.sessions SET expires_at = now() - interval '1 minute'`)
	resp := b.get(c.url("/api/data"))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.JSONEq(t, `{"error":"Session expired"}`, resp.body)
	assert.Empty(t, b.cookie(c), "the stale cookie is cleared")

	b.setCookie(c, token)
	resp = b.get(c.url("/api/auth/me"))
	assert.JSONEq(t, `{"error":"Session expired"}`, resp.body)
	resp = b.getPage(c.url("/page"))
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "a browser is sent to log in again")
}

func TestSessionSurvivesRestartAndReload(t *testing.T) {
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startCaddy(t, site{DatabaseURL: db.url})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	token := b.cookie(c)

	c.restart()
	resp := b.getPage(c.url("/"))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "still logged in after Caddy stops and starts")
	assert.Equal(t, "hello alice", resp.body)

	before := backendPIDs(t, db)
	require.NotEmpty(t, before)
	for range 3 {
		c.reload(site{DatabaseURL: db.url, HandlerOptions: "public /health"})
		resp = b.getPage(c.url("/"))
		assert.Equal(t, http.StatusOK, resp.StatusCode, "still logged in after a config reload")
	}
	assert.Equal(t, token, b.cookie(c))
	after := backendPIDs(t, db)
	assert.Subset(t, after, before, "a reload keeps the pool's connections instead of dropping them")
	assert.LessOrEqual(t, len(after), len(before)+1, "a reload does not double the connections")
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

func TestTwoCaddyServersShareSessions(t *testing.T) {
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	one := startCaddy(t, site{DatabaseURL: db.url})
	two := startCaddy(t, site{DatabaseURL: db.url})

	// Logged in on one, the same cookie works on two; logging out on two ends it on one.
	b := newBrowser(t)
	b.login(one, "alice", "correct horse battery")
	token := b.cookie(one)
	b.setCookie(two, token)
	assert.Equal(t, http.StatusOK, b.get(two.url("/api/auth/me")).StatusCode)

	resp := b.postJSON(two.url("/api/auth/logout"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b.setCookie(one, token)
	assert.Equal(t, http.StatusUnauthorized, b.get(one.url("/api/auth/me")).StatusCode)

	// And the other way round.
	b2 := newBrowser(t)
	b2.login(two, "alice", "correct horse battery")
	token = b2.cookie(two)
	b2.setCookie(one, token)
	assert.Equal(t, http.StatusOK, b2.get(one.url("/api/auth/me")).StatusCode)
	require.Equal(t, http.StatusOK, b2.postJSON(one.url("/api/auth/logout"), nil).StatusCode)
	b2.setCookie(two, token)
	assert.Equal(t, http.StatusUnauthorized, b2.get(two.url("/api/auth/me")).StatusCode)
}

func TestDatabaseOutageAnswers503AndKeepsTheCookie(t *testing.T) {
	srv := pgtest.NewServer(t)
	db := newDatabaseAt(t, srv.NewDatabase(t))
	db.addUser(t, "alice", "correct horse battery")
	c := startCaddy(t, site{DatabaseURL: db.url})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	token := b.cookie(c)

	srv.Stop(t)
	for _, path := range []string{"/", "/api/auth/me"} {
		resp := b.getPage(c.url(path))
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, path)
		assert.NotEmpty(t, resp.Header.Get("Retry-After"), path)
		assert.Contains(t, resp.json(t)["error"], "unavailable")
		assert.Empty(t, resp.Header.Values("Set-Cookie"), "the cookie is kept while the database is down")
	}
	resp := b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": "correct horse battery"})
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "a login during the outage is not a wrong password")
	assert.Equal(t, token, b.cookie(c))

	srv.Start(t)
	require.Eventually(t, func() bool {
		return b.getPage(c.url("/")).StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "with the database back, the same cookie works")
	assert.Equal(t, token, b.cookie(c))
}

func TestCleanupJobDeletesExpiredSessionsAndLogsIt(t *testing.T) {
	db := newDatabase(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	for range 3 {
		_, _, err := db.store.CreateSession(context.Background(), store.SessionParams{User: *alice, Lifetime: time.Hour})
		require.NoError(t, err)
	}
	db.exec(t, `UPDATE pgsession.sessions SET expires_at = now() - interval '1 hour'`)
	live, _, err := db.store.CreateSession(context.Background(), store.SessionParams{User: *alice, Lifetime: time.Hour})
	require.NoError(t, err)

	c := startCaddy(t, site{DatabaseURL: db.url, CleanupInterval: "1s"})
	require.Eventually(t, func() bool {
		return db.count(t, `SELECT count(*) FROM pgsession.sessions`) == 1
	}, 30*time.Second, 100*time.Millisecond, "the cleanup job removes expired sessions")
	got, err := db.store.GetSession(context.Background(), live)
	require.NoError(t, err)
	assert.NotNil(t, got, "and leaves live ones")
	require.Eventually(t, func() bool {
		return regexp.MustCompile(`"msg":"deleted expired sessions","deleted":3`).MatchString(c.logs())
	}, 10*time.Second, 50*time.Millisecond, "the cleanup logs its count:\n%s", c.logs())
}

func TestAccessLogNamesTheUser(t *testing.T) {
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
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
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
		out, err := caddyCommand(t, "validate", "http://localhost {\n\tpg_session\n\tfile_server\n}\n")
		require.Error(t, err)
		assert.Contains(t, out, "add a global option block")
	})
	t.Run("valid config validates without a database", func(t *testing.T) {
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
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	out, err := cmd.CombinedOutput()
	// Caddy logs JSON; unescaping its quotes lets tests look for messages as a user reads them.
	return strings.ReplaceAll(string(out), `\"`, `"`), err
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestRequestsWithAValidSessionWriteNothing(t *testing.T) {
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startCaddy(t, site{DatabaseURL: db.url})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")

	// A statement-level trigger counts every write to the sessions table.
	db.exec(t, `CREATE TABLE public.session_writes (op text NOT NULL)`)
	db.exec(t, `CREATE FUNCTION public.count_session_write() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN INSERT INTO public.session_writes VALUES (TG_OP); RETURN NULL; END $$`)
	db.exec(t, `CREATE TRIGGER count_session_write AFTER INSERT OR UPDATE OR DELETE ON pgsession.sessions
		FOR EACH STATEMENT EXECUTE FUNCTION public.count_session_write()`)

	for range 100 {
		require.Equal(t, http.StatusOK, b.getPage(c.url("/page")).StatusCode)
	}
	assert.Zero(t, db.count(t, `SELECT count(*) FROM public.session_writes`), "the gate only reads")
}
