package pgsession

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A config reload keeps what the server has in memory: the sessions it
// checked, the connection that keeps them up to date, and the requests in
// progress. A reload on a busy site costs no query per live session, and a
// session revoked after it still ends at once.

// Five reloads under load: the live sessions go on being answered from
// memory (the misses do not grow by the number of sessions), one LISTEN
// connection, the same, carries over every reload, and a session deleted
// in SQL after the reloads is refused at once.
func TestAReloadKeepsSessionsInMemory(t *testing.T) {
	t.Parallel()
	const sessions, reloads, loaders = 20, 5, 4
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	tokens, handles := make([]string, sessions), make([]string, sessions)
	for i := range tokens {
		tokens[i], handles[i] = db.sessionInDB(t, alice)
	}
	site := startSite(t, siteOptions{db: db.url})
	waitListening(t, site)
	for _, token := range tokens {
		require.Equal(t, http.StatusOK, gateStatus(t, site, token))
	}
	listener := listenerPIDs(t, db)
	require.Len(t, listener, 1, "one LISTEN connection")
	misses := site.metric(t, "cache_lookups_total", "result", "miss")
	queries := site.metric(t, "store_query_duration_seconds", "statement", "check_session")

	// Loaders ask with every session, over and over, of the newest config;
	// a request cut by the old config's server closing is no refusal.
	var current atomic.Pointer[testSite]
	current.Store(site)
	var (
		served  atomic.Int64
		mu      sync.Mutex
		refused []string
	)
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for n := range loaders {
		wg.Go(func() {
			tr := newTransport()
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for i := n; ctx.Err() == nil; i++ {
				s := current.Load()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/page"), nil)
				if err != nil {
					continue // the site stopped serving between the two lines
				}
				req.Header.Set("Cookie", cookieHeader(tokens[i%sessions]))
				resp, err := client.Do(req)
				if err != nil {
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

	for i := range reloads {
		old := current.Load()
		next := startSite(t, siteOptions{db: db.url, handler: fmt.Sprintf("public /health%d", i), reloads: old})
		assert.Equal(t, listener, listenerPIDs(t, db), "reload %d: the new config listens on the old connection", i+1)
		current.Store(next)
		require.Eventually(t, func() bool { return len(next.statuses()) > sessions }, 30*time.Second, time.Millisecond,
			"reload %d: the new config serves the load", i+1)
		old.stop()
		assert.Equal(t, listener, listenerPIDs(t, db), "reload %d: the old config's end leaves the connection listening", i+1)
	}
	site = current.Load()
	require.Eventually(t, func() bool { return len(site.statuses()) > 5*sessions }, 30*time.Second, time.Millisecond)
	stopLoad()
	wg.Wait()

	grown := site.metric(t, "cache_lookups_total", "result", "miss") - misses
	asked := site.metric(t, "store_query_duration_seconds", "statement", "check_session") - queries
	t.Logf("%d reloads under load: %d requests, %.0f misses, %.0f session look-ups in PostgreSQL, %d live sessions",
		reloads, served.Load(), grown, asked, sessions)
	assert.Empty(t, refused, "every request of a live session is served through the reloads")
	assert.Less(t, grown, float64(sessions), "the reloads emptied memory: every live session cost a query again")

	// The listener kept across the reloads still carries revocations.
	db.exec(t, `DELETE FROM pgsession.sessions WHERE handle = $1`, handles[0])
	start := time.Now()
	require.Eventually(t, func() bool { return gateStatus(t, site, tokens[0]) == http.StatusUnauthorized }, 5*time.Second, time.Millisecond,
		"a session deleted after the reloads was still served")
	t.Logf("refused %v after the delete", time.Since(start).Round(time.Millisecond))
	assert.Equal(t, http.StatusOK, gateStatus(t, site, tokens[1]), "the other sessions live on")
}

// A reload that changes the shape of memory (cache_size, offline_grace)
// makes new memory: the option takes effect, and the old memory, with its
// connection, goes with the old config.
func TestAReloadThatResizesMemoryStartsAfresh(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	old := startSite(t, siteOptions{db: db.url})
	waitListening(t, old)
	require.Equal(t, http.StatusOK, gateStatus(t, old, token))
	first := listenerPIDs(t, db)
	require.Len(t, first, 1)

	off := startSite(t, siteOptions{db: db.url, app: "cache_size 0", reloads: old})
	old.stop()
	assert.Zero(t, off.app.cache.Size(), "cache_size 0 took effect")
	require.Eventually(t, func() bool {
		now := listenerPIDs(t, db)
		return len(now) == 1 && now[0] != first[0]
	}, 30*time.Second, 10*time.Millisecond, "the new memory listens on a connection of its own, the old one is closed")
	misses := off.metric(t, "cache_lookups_total", "result", "miss")
	require.Equal(t, http.StatusOK, gateStatus(t, off, token))
	assert.Equal(t, misses+1, off.metric(t, "cache_lookups_total", "result", "miss"), "without memory, the database is asked")
}

// A reload does not check the schema again: it starts while another
// server upgrading the schema holds its table of migrations, which a start
// that checks it would wait for.
func TestAReloadDoesNotCheckTheSchemaAgain(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	old := startSite(t, siteOptions{db: db.url})
	tx, err := db.pool.Begin(context.Background())
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(context.Background(), `LOCK TABLE pgsession.schema_migrations IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	start := time.Now()
	reloaded := startSite(t, siteOptions{db: db.url, handler: "public /health", reloads: old})
	t.Logf("the reload started in %v", time.Since(start).Round(time.Millisecond))
	old.stop()
	assert.Equal(t, http.StatusOK, gateStatus(t, reloaded, token))
}

// A stream that began before a reload ends with its session after it,
// though the old config, which let it through, has stopped: the requests in
// progress are the server's, watched by whichever config runs.
func TestAStreamFromBeforeAReloadEndsWithItsSession(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	events := newEventStream(t)
	old := startSite(t, siteOptions{db: db.url, next: events.proxy()})
	token, handle := db.sessionInDB(t, alice)
	ended := openStream(t, old.url("/api/events"), token)

	// Caddy stops and cleans up the old config's apps while its server
	// still finishes the responses in progress.
	startSite(t, siteOptions{db: db.url, next: events.proxy(), reloads: old})
	require.NoError(t, old.app.Stop())
	require.NoError(t, old.app.Cleanup())

	db.exec(t, `DELETE FROM pgsession.sessions WHERE handle = $1`, handle)
	start := time.Now()
	select {
	case at := <-ended:
		t.Logf("the stream ended %v after the delete", at.Sub(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("a stream from before the reload outlived its session")
	}
}

// listenerPIDs lists the backends of the test's database that LISTEN.
func listenerPIDs(t *testing.T, db *testDB) []int {
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
