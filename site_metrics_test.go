package pgsession

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/metricstest"
	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// The metrics are what an operator reads at Caddy's /metrics: each test
// sends real traffic and reads the config's registry, which /metrics serves.
// Every test has a database, and so a pool and metrics, of its own.

func TestMetricsCountWhatUsersDo(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	// A session that ended before the server started, for its first cleanup round.
	gone, _ := db.sessionInDB(t, alice)
	expire(t, db, gone)
	s := openSite(t, siteOptions{db: db.url, app: "max_connections 3", handler: "max_failed_logins_per_account 2"})
	countSessionsEvery(s.app, 20*time.Millisecond)
	require.NoError(t, s.start())
	waitListening(t, s)
	// The first round runs in the background: it must be done before
	// another session ends, or it deletes that one too.
	require.Eventually(t, func() bool { return s.logged(t, "deleted expired sessions") }, 10*time.Second, 10*time.Millisecond)

	// Logins: a wrong password, the right one, and a guesser throttled.
	assert.Equal(t, http.StatusUnauthorized, postLoginJSON(t, s, "alice", "wrong password").StatusCode)
	b := newBrowser(t)
	b.login(s, "alice", "correct horse battery")
	for range 2 {
		assert.Equal(t, http.StatusUnauthorized, postLoginJSON(t, s, "mallory", "guess").StatusCode)
	}
	assert.Equal(t, http.StatusTooManyRequests, postLoginJSON(t, s, "mallory", "guess").StatusCode)

	// The gate: no cookie (a script, then a browser), a cookie that is no
	// token, a session that has ended, a live one, a cross-site request, a
	// database that cannot answer.
	assert.Equal(t, http.StatusUnauthorized, sendRaw(t, http.MethodGet, s.url("/page"), "").StatusCode)
	assert.Equal(t, http.StatusSeeOther, newBrowser(t).getPage(s.url("/page")).StatusCode)
	assert.Equal(t, http.StatusUnauthorized, gateStatus(t, s, "not-a-token"))
	ended, _ := db.sessionInDB(t, alice)
	expire(t, db, ended)
	assert.Equal(t, http.StatusUnauthorized, gateStatus(t, s, ended))
	assert.Equal(t, http.StatusOK, b.get(s.url("/page")).StatusCode)
	// The first look-up asked the database; the next ones are answered from
	// memory once the site trusts it, which a slow machine may delay.
	allowed := 1
	require.Eventually(t, func() bool {
		allowed++
		return b.get(s.url("/page")).StatusCode == http.StatusOK && s.metric(t, "cache_lookups_total", "result", "hit") >= 1
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, http.StatusForbidden, b.send(http.MethodPost, s.url("/page"), nil,
		"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site").StatusCode)
	unseen, _ := db.sessionInDB(t, alice)
	db.exec(t, `ALTER TABLE pgsession.sessions RENAME TO sessions_away`)
	assert.Equal(t, http.StatusServiceUnavailable, gateStatus(t, s, unseen))
	db.exec(t, `ALTER TABLE pgsession.sessions_away RENAME TO sessions`)

	metricstest.Gather(t, s.registry).Expect(t, "caddy_pg_session_",
		metricstest.Want("logins_total", "outcome", "failure", 3),
		metricstest.Want("logins_total", "outcome", "success", 1),
		metricstest.Want("logins_total", "outcome", "throttled", 1),
		metricstest.Want("sessions_created_total", "", "", 1),
		metricstest.Want("gate_requests_total", "outcome", "no_cookie", 2),
		metricstest.Want("gate_requests_total", "outcome", "invalid", 1),
		metricstest.Want("gate_requests_total", "outcome", "expired", 1),
		metricstest.Want("gate_requests_total", "outcome", "allowed", float64(allowed)),
		metricstest.Want("gate_requests_total", "outcome", "refused_cross_origin", 1),
		metricstest.Want("gate_requests_total", "outcome", "store_error", 1),
		metricstest.Want("cache_lookups_total", "result", "offline_grace", 0),
		metricstest.Want("cleanup_deleted_total", "kind", "sessions", 1),
		metricstest.Want("cleanup_deleted_total", "kind", "sign_ins", 0),
		metricstest.Want("cleanup_deleted_total", "kind", "pending_logins", 0),
		metricstest.Want("cleanup_deleted_total", "kind", "used_challenges", 0),
		metricstest.Want("pool_max_connections", "", "", 3),
	)
	// Every allowed request looked its session up, and so did the ended
	// session and the failed look-up; the invalid cookie needed none.
	assert.Equal(t, float64(allowed+2),
		s.metric(t, "cache_lookups_total", "result", "hit")+s.metric(t, "cache_lookups_total", "result", "miss"))

	// Alice's browser session and the unseen one are live; one has ended.
	require.Eventually(t, func() bool {
		return s.metric(t, "active_sessions", "", "") == 2 && s.metric(t, "expired_sessions", "", "") == 1
	}, 10*time.Second, 10*time.Millisecond, "active %v, expired %v", s.metric(t, "active_sessions", "", ""),
		s.metric(t, "expired_sessions", "", ""))

	// One scrape, so the pool's three counts come from one snapshot of it.
	pool := metricstest.Gather(t, s.registry)
	total := pool.Value(t, "caddy_pg_session_pool_total_connections", "", "")
	assert.GreaterOrEqual(t, total, 1.0)
	assert.LessOrEqual(t, pool.Value(t, "caddy_pg_session_pool_acquired_connections", "", "")+
		pool.Value(t, "caddy_pg_session_pool_idle_connections", "", ""), total)
	for _, statement := range []string{"check_session", "create_session", "reserve_attempt", "count_sessions", "claim_cleanup"} {
		assert.GreaterOrEqual(t, s.metric(t, "store_query_duration_seconds", "statement", statement), 1.0, statement)
	}
	for _, statement := range metricstest.Gather(t, s.registry).LabelValues("caddy_pg_session_store_query_duration_seconds", "statement") {
		assert.Regexp(t, `^[a-z_]+$`, statement, "statements are named, never quoted")
	}
}

// A reload provisions the new config, with a registry of its own, while the
// old one still runs: the metrics register again without a conflict and
// carry their counts over.
func TestMetricsSurviveAReload(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	old := startSite(t, siteOptions{db: db.url})
	assert.Equal(t, http.StatusUnauthorized, postLoginJSON(t, old, "alice", "wrong password").StatusCode)
	newBrowser(t).login(old, "alice", "correct horse battery")

	reloaded := startSite(t, siteOptions{db: db.url, handler: "public /health"})
	old.stop()
	assert.Equal(t, 1.0, reloaded.metric(t, "logins_total", "outcome", "failure"))
	assert.Equal(t, 1.0, reloaded.metric(t, "logins_total", "outcome", "success"))
	newBrowser(t).login(reloaded, "alice", "correct horse battery")
	assert.Equal(t, 2.0, reloaded.metric(t, "logins_total", "outcome", "success"))
	assert.Equal(t, 2.0, reloaded.metric(t, "sessions_created_total", "", ""))
	assert.GreaterOrEqual(t, reloaded.metric(t, "pool_total_connections", "", ""), 1.0,
		"the pool's numbers come from the pool the reload kept")
}

// During an outage, a session confirmed within offline_grace is served
// from memory and counted so; a session the server never saw gets 503.
func TestMetricsDuringAnOutage(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	db := testDBAt(t, srv.NewDatabase(t))
	alice := db.addUser(t, "alice", "correct horse battery")
	known, _ := db.sessionInDB(t, alice)
	unseen, _ := db.sessionInDB(t, alice)
	s := startSite(t, siteOptions{db: db.url})
	waitListening(t, s)
	require.Equal(t, http.StatusOK, gateStatus(t, s, known))

	srv.Stop(t)
	require.Eventually(t, func() bool {
		return gateStatus(t, s, known) == http.StatusOK && s.metric(t, "cache_lookups_total", "result", "offline_grace") >= 1
	}, 30*time.Second, 10*time.Millisecond)
	assert.Equal(t, http.StatusServiceUnavailable, gateStatus(t, s, unseen))
	assert.GreaterOrEqual(t, s.metric(t, "gate_requests_total", "outcome", "store_error"), 1.0)
	assert.Zero(t, s.metric(t, "gate_requests_total", "outcome", "expired"), "an outage ends no session")
}

// expire ends the session of token in the database, without telling anyone.
func expire(t *testing.T, db *testDB, token string) {
	t.Helper()
	db.exec(t, `UPDATE pgsession.sessions SET expires_at = now() - interval '1 second' WHERE id = $1`,
		string(store.HashToken(token)))
}

// metric is the value of caddy_pg_session_<name> in the site's registry,
// which Caddy's /metrics serves, with label set to value when label is not
// empty; a metric that is not there fails the test.
func (s *testSite) metric(t *testing.T, name, label, value string) float64 {
	t.Helper()
	return metricstest.Gather(t, s.registry).Value(t, "caddy_pg_session_"+name, label, value)
}
