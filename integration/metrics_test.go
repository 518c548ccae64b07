package integration

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/metricstest"
	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// The plugin's metrics are served at the admin endpoint's /metrics beside
// Caddy's own, with no `metrics` option: that one turns on Caddy's
// per-request HTTP metrics, which the plugin's do not need.
func TestMetricsAtTheAdminEndpoint(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startCaddy(t, site{DatabaseURL: db.url, AppOptions: "max_connections 4"})

	b := newBrowser(t)
	resp := b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": "wrong password"})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, http.StatusUnauthorized, b.get(c.url("/page")).StatusCode, "no cookie yet")
	b.login(c, "alice", "correct horse battery")
	require.Equal(t, http.StatusOK, b.get(c.url("/page")).StatusCode)
	require.Equal(t, http.StatusUnauthorized, newBrowser(t).get(c.url("/page"), "Cookie", "session=forged").StatusCode)

	m := scrape(t, c)
	m.Expect(t, "caddy_pg_session_",
		metricstest.Want("logins_total", "outcome", "failure", 1),
		metricstest.Want("logins_total", "outcome", "success", 1),
		metricstest.Want("logins_total", "outcome", "throttled", 0),
		metricstest.Want("sessions_created_total", "", "", 1),
		metricstest.Want("gate_requests_total", "outcome", "no_cookie", 1),
		metricstest.Want("gate_requests_total", "outcome", "allowed", 1),
		metricstest.Want("gate_requests_total", "outcome", "invalid", 1),
		metricstest.Want("gate_requests_total", "outcome", "expired", 0),
		metricstest.Want("cache_lookups_total", "result", "miss", 1),
		metricstest.Want("pool_max_connections", "", "", 4),
	)
	assert.GreaterOrEqual(t, m.Value(t, "caddy_pg_session_store_query_duration_seconds", "statement", "check_session"), 1.0)
	assert.GreaterOrEqual(t, m.Value(t, "caddy_pg_session_pool_total_connections", "", ""), 1.0)
	for _, name := range []string{"caddy_pg_session_active_sessions", "caddy_pg_session_expired_sessions",
		"caddy_pg_session_cleanup_deleted_total", "caddy_config_last_reload_successful"} {
		assert.Contains(t, m, name, "served beside Caddy's own metrics")
	}

	// A reload keeps the counts, and counts on.
	c.reload(site{DatabaseURL: db.url, AppOptions: "max_connections 4", HandlerOptions: "public /health"})
	// The old config's server closes its idle connections as it stops;
	// a browser opens a new one, as this client now does.
	require.Equal(t, http.StatusOK, b.getAfterReload(c.url("/page")).StatusCode)
	m = scrape(t, c)
	assert.Equal(t, 1.0, m.Value(t, "caddy_pg_session_logins_total", "outcome", "success"))
	assert.Equal(t, 2.0, m.Value(t, "caddy_pg_session_gate_requests_total", "outcome", "allowed"))
	assert.Equal(t, 1.0, m.Value(t, "caddy_config_last_reload_successful", "", ""))
}

// scrape reads Caddy's /metrics at the admin endpoint.
func scrape(t *testing.T, c *caddyServer) metricstest.Families {
	t.Helper()
	req := webtest.Request(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", c.site.AdminPort), nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return metricstest.Parse(t, resp.Body)
}
