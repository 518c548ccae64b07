package pgsession

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
)

// What the log says during a fault must be what happened: the counts in the
// outage's lines are what clients saw and what the metrics say, a cleanup
// round says what it deleted however it ended, the host named is the one
// that answered, and one crash is one outage.

// The outage's summary and its end count each refused request once: as
// many as clients got 503 and as gate_requests_total{outcome="store_error"}
// counted; and each request served from memory once, as
// cache_lookups_total{result="offline_grace"} counted.
func TestOutageLinesCountEachRequestOnce(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	db := testDBAt(t, srv.NewDatabase(t))
	alice := db.addUser(t, "alice", "correct horse battery")
	known, _ := db.sessionInDB(t, alice)
	unseen, _ := db.sessionInDB(t, alice)
	s := openSite(t, siteOptions{db: db.url})
	summarizeOutagesEvery(s.app, 300*time.Millisecond)
	require.NoError(t, s.start())
	waitListening(t, s)
	require.Equal(t, http.StatusOK, gateStatus(t, s, known))

	srv.Stop(t)
	// A session the site never saw and one memory serves, in turn, until
	// the outage has been summed up; the summary comes while a request is
	// answered, so after each one the counts must agree.
	refused := 0
	ask := func(token string) {
		if gateStatus(t, s, token) == http.StatusServiceUnavailable {
			refused++
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	var summary map[string]any
	for summary == nil {
		require.True(t, time.Now().Before(deadline), "the outage was never summed up")
		for _, token := range []string{unseen, known} {
			ask(token)
			if summary = lastEntry(t, s, "session store still unreachable"); summary != nil {
				break
			}
		}
	}
	require.Positive(t, refused)
	assert.Equal(t, float64(refused), summary["requests_refused"], "the summary's refusals are what clients saw")
	assert.Equal(t, s.metric(t, "gate_requests_total", "outcome", "store_error"), summary["requests_refused"])
	assert.Equal(t, s.metric(t, "cache_lookups_total", "result", "offline_grace"), summary["requests_served_from_memory"])
	assert.Positive(t, summary["requests_served_from_memory"])

	srv.Start(t)
	// Only the unseen session now, which memory never serves, so nothing
	// is served from memory after the counts are taken.
	var back map[string]any
	require.Eventually(t, func() bool {
		ask(unseen)
		back = lastEntry(t, s, "session store reachable again")
		return back != nil
	}, 30*time.Second, 10*time.Millisecond)
	t.Logf("%d requests refused during the outage; the log says %v", refused, back)
	assert.Equal(t, float64(refused), back["requests_refused"], "the end's refusals are what clients saw")
	assert.Equal(t, s.metric(t, "gate_requests_total", "outcome", "store_error"), back["requests_refused"])
	assert.Equal(t, s.metric(t, "cache_lookups_total", "result", "offline_grace"), back["requests_served_from_memory"])
}

// A backlog of expired sessions larger than one round can delete (here a
// round of 50 ms; in the field a million rows and 5 s) is deleted over
// several rounds, each of which logs what it deleted, the ones that ran out
// of time at WARN: the lines add up to the metric and to the backlog.
func TestACleanupRoundThatRunsOutOfTimeSaysWhatItDeleted(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	const backlog = 20_000
	db.exec(t, `INSERT INTO pgsession.sessions (id, user_id, expires_at)
		SELECT md5(i::text) || md5('x' || i), $1, now() - interval '1 hour' FROM generate_series(1, $2) i`,
		alice.ID, backlog)
	s := startSite(t, siteOptions{db: db.url, app: "cleanup_interval 50ms"})

	logged := func() (sum float64, outOfTime int) {
		for _, e := range s.logEntries(t) {
			if n, ok := e["deleted"].(float64); ok {
				sum += n
			}
			if strings.Contains(e["msg"].(string), "ran out of time") {
				outOfTime++
			}
		}
		return sum, outOfTime
	}
	// A round's line follows its count in the metric, so the lines are
	// waited for, and the metric read after them.
	require.Eventually(t, func() bool {
		return db.count(t, `SELECT count(*) FROM pgsession.sessions`) == 0
	}, 60*time.Second, 20*time.Millisecond, "the backlog was not deleted")
	require.Eventually(t, func() bool {
		sum, _ := logged()
		return sum == backlog
	}, 10*time.Second, 20*time.Millisecond, "the cleanup lines do not add up to what was deleted")
	sum, outOfTime := logged()
	t.Logf("%d rounds ran out of time; the lines add up to %v deleted", outOfTime, sum)
	assert.Equal(t, sum, s.metric(t, "cleanup_deleted_total", "kind", "sessions"), "the lines add up to the metric")
	assert.Positive(t, outOfTime, "no round ran out of time: the backlog is too small for this machine")
}

// With a multi-host database_url whose first host is down, the line that
// says the store is back names the host that answered; the one that says
// it is gone names them all.
func TestReachableAgainNamesTheHostThatAnswered(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	dbURL := srv.NewDatabase(t)
	db := testDBAt(t, dbURL)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	live := net.JoinHostPort(srv.Host(), strconv.Itoa(srv.Port()))
	dead := net.JoinHostPort(srv.Host(), strconv.Itoa(closedPort(t)))
	multi := strings.Replace(dbURL, live, dead+","+live, 1)
	require.NotEqual(t, dbURL, multi)
	database := dbURL[strings.LastIndex(dbURL, "/")+1 : strings.Index(dbURL, "?")]

	s := startSite(t, siteOptions{db: multi, app: "cache_size 0"})
	require.Equal(t, http.StatusOK, gateStatus(t, s, token))
	srv.Stop(t)
	require.Eventually(t, func() bool {
		return gateStatus(t, s, token) == http.StatusServiceUnavailable && lastEntry(t, s, "session store unreachable") != nil
	}, 30*time.Second, 10*time.Millisecond)
	srv.Start(t)
	var back map[string]any
	require.Eventually(t, func() bool {
		gateStatus(t, s, token)
		back = lastEntry(t, s, "session store reachable again")
		return back != nil
	}, 30*time.Second, 10*time.Millisecond)
	assert.Equal(t, live+"/"+database, back["database"], "the host that answered")
	assert.Equal(t, dead+","+live+"/"+database, lastEntry(t, s, "session store unreachable")["database"], "every host tried")
}

// A crash (pg_ctl stop -m immediate) resets every connection of the pool at
// once, under load, and the restarted database meets the pool's dead
// connections one by one: each crash is still one outage, with one ERROR
// line and one line that says the store is back.
func TestACrashIsOneOutage(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	db := testDBAt(t, srv.NewDatabase(t))
	alice := db.addUser(t, "alice", "correct horse battery")
	var tokens []string
	for range 8 {
		token, _ := db.sessionInDB(t, alice)
		tokens = append(tokens, token)
	}
	// The throwaway cluster commits without waiting for its WAL to be
	// written (synchronous_commit off), which a crash would lose.
	db.exec(t, `CHECKPOINT`)
	// Without memory every request asks the database, so the crash finds
	// queries in flight on many connections.
	s := startSite(t, siteOptions{db: db.url, app: "cache_size 0\nmax_connections 8"})

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var ok, refused, other atomic.Int64
	client := &http.Client{Transport: newTransport(), Timeout: 10 * time.Second}
	for _, token := range tokens {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/page"), nil)
				if err != nil {
					return
				}
				req.Header.Set("Cookie", cookieHeader(token))
				resp, err := client.Do(req)
				switch {
				case err != nil:
				case resp.StatusCode == http.StatusOK:
					ok.Add(1)
				case resp.StatusCode == http.StatusServiceUnavailable:
					refused.Add(1)
				default:
					other.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		})
	}
	const crashes = 3
	for i := range crashes {
		before := ok.Load()
		require.Eventually(t, func() bool { return ok.Load() > before+200 }, 30*time.Second, 5*time.Millisecond,
			"the site is not under load")
		srv.StopImmediately(t)
		require.Eventually(t, func() bool { return countLines(t, s, "session store unreachable") >= i+1 },
			30*time.Second, 5*time.Millisecond)
		srv.Start(t)
		require.Eventually(t, func() bool { return countLines(t, s, "session store reachable again") >= i+1 },
			30*time.Second, 5*time.Millisecond)
	}
	// More load after the last crash, for a late failure to show.
	before := ok.Load()
	require.Eventually(t, func() bool { return ok.Load() > before+500 }, 30*time.Second, 5*time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("%d requests served, %d refused, %d otherwise answered", ok.Load(), refused.Load(), other.Load())
	assert.Equal(t, crashes, countLines(t, s, "session store unreachable"), "one ERROR line per crash")
	assert.Equal(t, crashes, countLines(t, s, "session store reachable again"), "one line per recovery")
	assert.Zero(t, other.Load(), "answers other than 200 and 503")
}

// lastEntry is the site's last log line whose message begins with msg, or nil.
func lastEntry(t *testing.T, s *testSite, msg string) map[string]any {
	t.Helper()
	var last map[string]any
	for _, e := range s.logEntries(t) {
		if m, _ := e["msg"].(string); strings.HasPrefix(m, msg) {
			last = e
		}
	}
	return last
}

// countLines is how many of the site's log lines have a message beginning with msg.
func countLines(t *testing.T, s *testSite, msg string) int {
	t.Helper()
	n := 0
	for _, e := range s.logEntries(t) {
		if m, _ := e["msg"].(string); strings.HasPrefix(m, msg) {
			n++
		}
	}
	return n
}

// closedPort is a loopback port nobody listens on: a database host that is down.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}
