package pgsession

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With memory off, a page's parallel requests with one cookie share their
// lookups, yet a request sent after a logout returned is refused, every
// time: sharing never answers a request from a lookup that began before it.
func TestParallelRequestsOfOneSessionShareLookupsAndNeverOutliveALogout(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s := startSite(t, siteOptions{db: db.url, app: "cache_size 0"})
	alice := db.addUser(t, "alice", "correct horse battery")
	client := &http.Client{Transport: newTransport()}
	get := func(token string) int {
		req, err := http.NewRequest(http.MethodGet, s.url("/page"), nil)
		require.NoError(t, err)
		req.Header.Set("Cookie", cookieHeader(token))
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}

	const workers, rounds = 16, 15
	warm, _ := db.sessionInDB(t, alice)
	require.Equal(t, http.StatusOK, get(warm)) // so the lookups have a count
	before := s.metric(t, "store_query_duration_seconds", "statement", "check_session")
	served, sentAfter := 0, 0
	for round := range rounds {
		token, _ := db.sessionInDB(t, alice)
		var loggedOut time.Time // set once the logout has returned
		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range workers {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					sent := time.Now()
					status := get(token)
					mu.Lock()
					after := !loggedOut.IsZero() && sent.After(loggedOut)
					if status == http.StatusOK {
						served++
					}
					if after {
						sentAfter++
					}
					mu.Unlock()
					if after {
						assert.Equal(t, http.StatusUnauthorized, status, "round %d: a request sent after the logout returned", round)
					}
				}
			})
		}
		// Let the workers run against the live session, then log out.
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return served >= (round+1)*workers*4
		}, 10*time.Second, time.Millisecond)
		resp := sendRaw(t, http.MethodPost, s.url("/api/auth/logout"), "", "Cookie", cookieHeader(token))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		mu.Lock()
		loggedOut = time.Now()
		mu.Unlock()
		// The workers go on until they have sent a few requests each after it.
		want := (round + 1) * workers * 3
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return sentAfter >= want
		}, 10*time.Second, time.Millisecond)
		close(stop)
		wg.Wait()
	}
	lookups := s.metric(t, "store_query_duration_seconds", "statement", "check_session") - before
	t.Logf("%d requests served by %.0f lookups", served, lookups)
	assert.Less(t, lookups, float64(served), "parallel requests of one session shared no lookup")
}
