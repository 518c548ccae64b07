package pgsession

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
)

// Operators put many Caddy servers on one PostgreSQL through PgBouncer in
// transaction pooling mode. Through it, with nothing but the plain URL:
// two servers race to install the schema on an empty database, logins and
// the gate work, the cleanup job runs, a logout reaches the other server
// through listen_database_url, and no advisory lock outlives Caddy.
func TestThroughPgBouncerInTransactionMode(t *testing.T) {
	t.Parallel()
	direct := pgtest.NewDatabase(t)
	bouncer := pgtest.NewPgBouncer(t, direct)

	// Both start at once against the empty database, through the pooler,
	// each with a pool of its own, as two processes would have: in one
	// process, sites share a pool when their database_url and
	// max_connections are the same, as the configs before and after a
	// reload do.
	app := "cleanup_interval 1s\nlisten_database_url " + direct
	a := openSite(t, siteOptions{db: bouncer.URL(), app: app + "\nmax_connections 4"})
	b := openSite(t, siteOptions{db: bouncer.URL(), app: app + "\nmax_connections 5"})
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, s := range []*testSite{a, b} {
		wg.Go(func() { errs[i] = s.start() })
	}
	wg.Wait()
	require.NoError(t, errs[0], "server a")
	require.NoError(t, errs[1], "server b")

	db := testDBAt(t, direct)
	db.addUser(t, "alice", "correct horse battery")
	browser := newBrowser(t)
	browser.login(a, "alice", "correct horse battery")
	token := browser.cookie(a)
	require.Equal(t, http.StatusOK, gateStatus(t, a, token))
	require.Equal(t, http.StatusOK, gateStatus(t, b, token))
	require.Equal(t, http.StatusOK, gateStatus(t, b, token), "known to b")
	require.Equal(t, http.StatusOK, browser.postJSON(a.url("/api/auth/logout"), nil).StatusCode)
	require.Eventually(t, func() bool { return gateStatus(t, b, token) == http.StatusUnauthorized }, 5*time.Second, time.Millisecond,
		"the logout on a reached b through listen_database_url")

	// The cleanup job claims and runs its rounds through the pooler.
	alice := db.userNamed(t, "alice")
	for range 5 {
		db.sessionInDB(t, alice)
	}
	db.exec(t, `UPDATE pgsession.sessions SET expires_at = now() - interval '1 hour'`)
	require.Eventually(t, func() bool {
		return db.count(t, `SELECT count(*) FROM pgsession.sessions`) == 0
	}, 20*time.Second, 50*time.Millisecond, "expired sessions deleted through the pooler")
	assert.True(t, a.logged(t, "deleted expired sessions") || b.logged(t, "deleted expired sessions"))

	// A third server without listen_database_url says it cannot listen, and
	// checks every request in the database instead of trusting memory.
	c := startSite(t, siteOptions{db: bouncer.URL()})
	require.Eventually(t, func() bool { return c.logged(t, "set listen_database_url") }, 20*time.Second, 50*time.Millisecond)
	browser.login(a, "alice", "correct horse battery")
	token = browser.cookie(a)
	require.Equal(t, http.StatusOK, gateStatus(t, c, token))
	require.Equal(t, http.StatusOK, browser.postJSON(a.url("/api/auth/logout"), nil).StatusCode)
	assert.Equal(t, http.StatusUnauthorized, gateStatus(t, c, token), "refused at the very next request")

	for _, s := range []*testSite{a, b, c} {
		s.stop()
	}
	// (Other tests' databases share the cluster, and take advisory locks of their own.)
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`), "no advisory lock outlives Caddy")
	pool := bouncer.Pool(t)
	t.Logf("pgbouncer pool after the test: %v", pool)
	assert.Equal(t, "transaction", pool["pool_mode"])
}
