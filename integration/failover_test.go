package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// A site whose database_url names a primary and its standby, with
// target_session_attrs=read-write, survives the primary's crash once the
// standby is promoted: users stay logged in, logins work again within
// seconds, nothing but a 503 is answered in the gap, the listening
// connection follows to the new primary (a session deleted there is
// refused at once), and the log names the new primary as the store that is
// back.
func TestAPrimaryFailover(t *testing.T) {
	t.Parallel()
	primary := pgtest.NewServer(t)
	dbURL := primary.NewDatabase(t)
	db := newDatabaseAt(t, dbURL)
	const password = "correct horse battery"
	db.addUser(t, "alice", password)
	db.addUser(t, "bob", password)
	standby := primary.NewStandby(t)
	oldHost := fmt.Sprintf("127.0.0.1:%d", primary.Port())
	newHost := fmt.Sprintf("127.0.0.1:%d", standby.Port())
	failoverURL := strings.Replace(dbURL, oldHost, oldHost+","+newHost, 1) + "&target_session_attrs=read-write"
	require.NotEqual(t, dbURL, failoverURL)
	c := startCaddy(t, site{DatabaseURL: failoverURL})

	// Users log in through the site, on the primary.
	const users = 8
	var tokens []string
	for i := range users {
		b := newBrowser(t)
		b.login(c, []string{"alice", "bob"}[i%2], password)
		tokens = append(tokens, b.cookie(c))
	}
	victim := newBrowser(t)
	victim.login(c, "alice", password)
	require.Eventually(t, func() bool { return strings.Contains(c.logs(), "listening for session changes") },
		30*time.Second, 10*time.Millisecond)
	standby.WaitCaughtUp(t, primary)

	// Load: each user asks for pages until told to stop, at most maxRequests in all.
	const maxRequests = 300_000
	ctx, stop := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stop()
	var sent, served, unavailable, other atomic.Int64
	var firstGap, lastGap atomic.Int64 // Unix nanoseconds of the first and last 503
	var otherStatuses sync.Map
	transport := &http.Transport{MaxIdleConnsPerHost: users}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for _, token := range tokens {
		wg.Go(func() {
			for ctx.Err() == nil && sent.Add(1) <= maxRequests {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/page"), nil)
				if err != nil {
					return
				}
				req.Header.Set("Cookie", sessionCookie(token))
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						other.Add(1)
						otherStatuses.Store(err.Error(), true)
					}
					continue
				}
				resp.Body.Close()
				switch now := time.Now().UnixNano(); resp.StatusCode {
				case http.StatusOK:
					served.Add(1)
				case http.StatusServiceUnavailable:
					unavailable.Add(1)
					firstGap.CompareAndSwap(0, now)
					lastGap.Store(now)
				default:
					other.Add(1)
					otherStatuses.Store(resp.StatusCode, true)
				}
			}
		})
	}
	require.Eventually(t, func() bool { return served.Load() > 1000 }, 30*time.Second, 10*time.Millisecond,
		"the site is not under load")

	// The primary crashes; until the standby is promoted no server takes
	// writes, and a login is refused with 503.
	crashed := time.Now()
	primary.StopImmediately(t)
	login := func() int {
		return newBrowser(t).postJSON(c.url("/api/auth/login"),
			map[string]string{"username": "bob", "password": password}).StatusCode
	}
	assert.Equal(t, http.StatusServiceUnavailable, login(), "a login with no primary")
	standby.Promote(t)
	promoted := time.Since(crashed)
	require.Eventually(t, func() bool { return login() == http.StatusOK }, 30*time.Second, 10*time.Millisecond,
		"logins do not work on the new primary")
	loginsBack := time.Since(crashed)

	// The listening connection is on the new primary: memory is trusted
	// again, so a session is answered from memory, and a session deleted on
	// the new primary is dropped from it by the NOTIFY.
	require.Eventually(t, func() bool { return strings.Count(c.logs(), "listening for session changes again") >= 1 },
		30*time.Second, 10*time.Millisecond, "the listening connection did not come back")
	listenerBack := time.Since(crashed)
	hits := func() float64 { return scrape(t, c).Value(t, "caddy_pg_session_cache_lookups_total", "result", "hit") }
	before := hits()
	require.Equal(t, http.StatusOK, victim.get(c.url("/page")).StatusCode)
	require.Eventually(t, func() bool {
		return victim.get(c.url("/page")).StatusCode == http.StatusOK && hits() > before
	}, 10*time.Second, 10*time.Millisecond, "memory is not trusted after the failover")
	newPrimary, err := pgxpool.New(context.Background(), standby.URLOf(t, dbURL))
	require.NoError(t, err)
	t.Cleanup(newPrimary.Close)
	tag, err := newPrimary.Exec(context.Background(), `DELETE FROM pgsession.sessions WHERE id = $1`,
		string(store.HashToken(victim.cookie(c))))
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected())
	deleted := time.Now()
	require.Eventually(t, func() bool { return victim.get(c.url("/page")).StatusCode == http.StatusUnauthorized },
		2*time.Second, 5*time.Millisecond, "a session deleted on the new primary is still served")
	revoked := time.Since(deleted)

	// The line that ends the outage names the new primary.
	var back map[string]any
	require.Eventually(t, func() bool {
		back = lastLogEntry(c.logs(), "session store reachable again")
		return back != nil
	}, 30*time.Second, 10*time.Millisecond, "the end of the outage was not logged")
	// Load on the new primary for a while, for a late failure to show.
	after := served.Load()
	require.Eventually(t, func() bool { return served.Load() > after+2000 }, 30*time.Second, 10*time.Millisecond)
	stop()
	wg.Wait()

	gap := time.Duration(0)
	if first := firstGap.Load(); first != 0 {
		gap = time.Duration(lastGap.Load() - first)
	}
	t.Logf("promoted %v after the crash; logins back after %v, listener after %v; a deleted session refused after %v",
		promoted.Round(time.Millisecond), loginsBack.Round(time.Millisecond), listenerBack.Round(time.Millisecond),
		revoked.Round(time.Millisecond))
	t.Logf("%d requests: %d served, %d answered 503 (over %v), %d otherwise; the log: %v",
		served.Load()+unavailable.Load()+other.Load(), served.Load(), unavailable.Load(), gap.Round(time.Millisecond),
		other.Load(), back)
	otherStatuses.Range(func(k, _ any) bool { t.Logf("also answered: %v", k); return true })
	assert.Zero(t, other.Load(), "answers other than 200 and 503 under load")
	assert.Contains(t, back["database"], newHost+"/", "the store that is back is the new primary")
	assert.Equal(t, 1, strings.Count(c.logs(), "session store unreachable"), "one crash, one outage")
}

// lastLogEntry is the last JSON line of logs whose message begins with msg, or nil.
func lastLogEntry(logs, msg string) map[string]any {
	var last map[string]any
	for line := range strings.Lines(logs) {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if m, _ := e["msg"].(string); strings.HasPrefix(m, msg) {
			last = e
		}
	}
	return last
}
