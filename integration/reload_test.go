package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A busy site reloaded five times: its live sessions go on being answered
// from memory, so the misses Caddy's /metrics counts do not grow by their
// number, the one LISTEN connection carries over, and a session deleted in
// SQL afterwards is refused at once.
func TestReloadsUnderLoadKeepSessionsInMemory(t *testing.T) {
	t.Parallel()
	const sessions, reloads, loaders = 20, 5, 4
	db := newDatabase(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	tokens, handles := make([]string, sessions), make([]string, sessions)
	for i := range tokens {
		tokens[i], handles[i] = sessionInDB(t, db, alice)
	}
	c := startCaddy(t, site{DatabaseURL: db.url})
	require.Eventually(t, func() bool { return strings.Contains(c.logs(), "listening for session changes") },
		30*time.Second, 10*time.Millisecond, "the pg_session app started")
	b := newBrowser(t)
	for _, token := range tokens {
		require.Equal(t, http.StatusOK, b.get(c.url("/page"), "Cookie", sessionCookie(token)).StatusCode)
	}
	before := scrape(t, c)
	listener := listeningPIDs(t, db)
	require.Len(t, listener, 1, "one LISTEN connection")

	// Each loader is a client of its own, asking with every session in turn.
	// A connection the old config's server closes as it stops is no
	// refusal: a browser opens another, and so does the loader.
	var (
		served, cut atomic.Int64
		mu          sync.Mutex
		refused     []string
		firstCut    error
	)
	page := c.url("/page") // the same across reloads, read before they change c
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var wg sync.WaitGroup
	for n := range loaders {
		wg.Go(func() {
			client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
			defer client.CloseIdleConnections()
			for i := n; ctx.Err() == nil; i++ {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, page, nil)
				if err != nil {
					panic(err)
				}
				req.Header.Set("Cookie", sessionCookie(tokens[i%sessions]))
				resp, err := client.Do(req)
				if err != nil {
					if cut.Add(1) == 1 {
						mu.Lock()
						firstCut = err
						mu.Unlock()
					}
					continue
				}
				resp.Body.Close()
				served.Add(1)
				if resp.StatusCode != http.StatusOK {
					mu.Lock()
					refused = append(refused, resp.Status)
					mu.Unlock()
				}
			}
		})
	}
	waitServed := func(what string) {
		t.Helper()
		from := served.Load()
		require.Eventually(t, func() bool { return served.Load() > from+sessions }, 30*time.Second, time.Millisecond, what)
	}
	waitServed("the load is served")
	for i := range reloads {
		c.reload(site{DatabaseURL: db.url, HandlerOptions: fmt.Sprintf("public /health%d", i)})
		waitServed(fmt.Sprintf("reload %d: the new config serves the load", i+1))
	}
	stopLoad()
	wg.Wait()

	after := scrape(t, c)
	grown := after.Value(t, "caddy_pg_session_cache_lookups_total", "result", "miss") -
		before.Value(t, "caddy_pg_session_cache_lookups_total", "result", "miss")
	asked := after.Value(t, "caddy_pg_session_store_query_duration_seconds", "statement", "check_session") -
		before.Value(t, "caddy_pg_session_store_query_duration_seconds", "statement", "check_session")
	t.Logf("%d reloads under load: %d requests (%d cut by a server closing, the first with %v), %.0f misses, %.0f session look-ups in PostgreSQL, %d live sessions",
		reloads, served.Load(), cut.Load(), firstCut, grown, asked, sessions)
	assert.Empty(t, refused, "every request of a live session is served through the reloads")
	assert.Less(t, grown, float64(sessions), "the reloads emptied memory: every live session cost a query again")
	assert.Equal(t, listener, listeningPIDs(t, db), "the LISTEN connection carries over every reload")
	assert.Equal(t, reloads, strings.Count(c.logs(), "kept the sessions in memory"), "each reload says so in the log")

	// The listener kept across the reloads still carries revocations.
	db.count(t, `WITH gone AS (DELETE FROM pgsession.sessions WHERE handle = $1 RETURNING 1) SELECT count(*) FROM gone`, handles[0])
	start := time.Now()
	require.Eventually(t, func() bool {
		return b.get(c.url("/page"), "Cookie", sessionCookie(tokens[0])).StatusCode == http.StatusUnauthorized
	}, 5*time.Second, time.Millisecond, "a session deleted after the reloads was still served")
	t.Logf("refused %v after the delete", time.Since(start).Round(time.Millisecond))
}

// listeningPIDs lists the backends of the test's database that LISTEN.
func listeningPIDs(t *testing.T, db *database) []int {
	t.Helper()
	rows, err := db.pool.Query(context.Background(),
		`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%' ORDER BY pid`)
	require.NoError(t, err)
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		require.NoError(t, rows.Scan(&pid))
		pids = append(pids, pid)
	}
	require.NoError(t, rows.Err())
	return pids
}
