package integration

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddytest"
	"github.com/pgsession/caddy-pgsession/internal/pgtest"
)

// Operators put many Caddy servers on one PostgreSQL through PgBouncer in
// transaction pooling mode. Through it, with nothing but the plain URL:
// two servers race to install the schema on an empty database, logins and
// the gate work, the cleanup job runs, a logout reaches the other server
// through listen_database_url, and no advisory lock outlives Caddy.
func TestThroughPgBouncerInTransactionMode(t *testing.T) {
	direct := pgtest.NewDatabase(t)
	bouncer := pgtest.NewPgBouncer(t, direct)

	// Both start at once against the empty database, through the pooler.
	servers := make([]*caddyServer, 2)
	procs := make([]*caddytest.Process, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range servers {
		s := site{DatabaseURL: bouncer.URL(), Port: freePort(t), AdminPort: freePort(t), CleanupInterval: "1s",
			AppOptions: "listen_database_url " + direct}
		servers[i] = &caddyServer{t: t, site: s}
		caddyfile := renderCaddyfile(t, s)
		wg.Go(func() {
			procs[i], errs[i] = caddytest.StartProcess(caddyBinary, caddyfile, servers[i].url("/api/auth/me"))
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "server %d", i)
		t.Cleanup(func() { procs[i].Stop() })
	}
	a, b := servers[0], servers[1]
	logsOf := func(i int) string { return procs[i].Logs() }
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server a logged:\n%s\nserver b logged:\n%s", logsOf(0), logsOf(1))
		}
	})

	db := newDatabaseAt(t, direct)
	db.addUser(t, "alice", "correct horse battery")
	browser := newBrowser(t)
	browser.login(a, "alice", "correct horse battery")
	token := browser.cookie(a)
	require.Equal(t, http.StatusOK, gate(t, a, token))
	require.Equal(t, http.StatusOK, gate(t, b, token))
	require.Equal(t, http.StatusOK, gate(t, b, token), "known to b")
	require.Equal(t, http.StatusOK, browser.postJSON(a.url("/api/auth/logout"), nil).StatusCode)
	require.Eventually(t, func() bool { return gate(t, b, token) == http.StatusUnauthorized }, 5*time.Second, time.Millisecond,
		"the logout on a reached b through listen_database_url")

	// The cleanup job claims and runs its rounds through the pooler.
	alice := must(t, db, "alice")
	for range 5 {
		sessionInDB(t, db, alice)
	}
	db.exec(t, `UPDATE pgsession.sessions SET expires_at = now() - interval '1 hour'`)
	require.Eventually(t, func() bool {
		return db.count(t, `SELECT count(*) FROM pgsession.sessions`) == 0
	}, 20*time.Second, 50*time.Millisecond, "expired sessions deleted through the pooler")
	assert.True(t, strings.Contains(logsOf(0), "deleted expired sessions") || strings.Contains(logsOf(1), "deleted expired sessions"))

	// A third server without listen_database_url says it cannot listen, and
	// checks every request in the database instead of trusting memory.
	c := startCaddy(t, site{DatabaseURL: bouncer.URL()})
	require.Eventually(t, func() bool { return strings.Contains(c.logs(), "set listen_database_url") }, 20*time.Second, 50*time.Millisecond)
	browser.login(a, "alice", "correct horse battery")
	token = browser.cookie(a)
	require.Equal(t, http.StatusOK, gate(t, c, token))
	require.Equal(t, http.StatusOK, browser.postJSON(a.url("/api/auth/logout"), nil).StatusCode)
	assert.Equal(t, http.StatusUnauthorized, gate(t, c, token), "refused at the very next request")

	for i := range procs {
		require.NoError(t, procs[i].Stop())
	}
	c.Stop()
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'`), "no advisory lock outlives Caddy")
	pool := bouncer.Pool(t)
	t.Logf("pgbouncer pool after the test: %v", pool)
	assert.Equal(t, "transaction", pool["pool_mode"])
}
