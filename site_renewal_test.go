package pgsession

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// A session whose row goes without a notification (a DELETE with the
// triggers off, as pg_restore --disable-triggers and logical replication
// make) is caught by the next renewal: every server refuses it within one
// renewal interval, and its requests in flight end.

// deleteWithoutTriggers deletes the session of token as a replica applies a
// change: no trigger runs, so no server hears of it.
func deleteWithoutTriggers(t *testing.T, db *testDB, token string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM pgsession.sessions WHERE id = $1`, string(store.HashToken(token)))
		if err == nil && tag.RowsAffected() != 1 {
			err = fmt.Errorf("deleted %d sessions", tag.RowsAffected())
		}
		return err
	}))
}

func TestASessionDeletedWithoutANotificationEndsWithinARenewalInterval(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	events := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" {
			fmt.Fprint(w, "ok")
			return
		}
		streamEvents(w, r, 50*time.Millisecond)
	})
	const interval = 500 * time.Millisecond
	a := startSite(t, siteOptions{db: db.url, handler: "renewal_interval 500ms", next: events.proxy()})
	b := startSite(t, siteOptions{db: db.url, handler: "renewal_interval 500ms"})
	waitListening(t, a)
	waitListening(t, b)

	token, _ := db.sessionInDB(t, alice)
	for _, s := range []*testSite{a, b} {
		require.Equal(t, http.StatusOK, gateStatus(t, s, token))
		require.Equal(t, http.StatusOK, gateStatus(t, s, token), "from memory")
	}
	streamEnded := openStream(t, a.url("/events"), token)

	deleteWithoutTriggers(t, db, token)
	deleted := time.Now()
	for name, s := range map[string]*testSite{"a": a, "b": b} {
		require.Eventually(t, func() bool { return gateStatus(t, s, token) == http.StatusUnauthorized },
			10*time.Second, 5*time.Millisecond, "%s kept serving a session whose row is gone", name)
		took := time.Since(deleted)
		t.Logf("%s refused the session %v after its row went", name, took.Round(time.Millisecond))
		// One renewal interval, and a second for a machine that is busy.
		assert.Less(t, took, interval+time.Second, "%s took longer than a renewal interval", name)
	}
	select {
	case at := <-streamEnded:
		took := at.Sub(deleted)
		t.Logf("the stream ended %v after the row went", took.Round(time.Millisecond))
		assert.Less(t, took, interval+time.Second)
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its session")
	}
	for _, s := range []*testSite{a, b} {
		assert.Equal(t, http.StatusUnauthorized, gateStatus(t, s, token), "forgotten, not put back")
	}
}

// A stream alone, with no other request of its session to renew it, still
// ends within about a renewal interval once its row is gone: the watch over
// requests in flight looks at each session again every renewal interval.
func TestAStreamAloneEndsWithinARenewalIntervalOfItsRowGoing(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	events := newEventStream(t)
	const interval = 500 * time.Millisecond
	a := startSite(t, siteOptions{db: db.url, handler: "renewal_interval 500ms", next: events.proxy()})
	waitListening(t, a)
	token, _ := db.sessionInDB(t, alice)

	req, err := http.NewRequest(http.MethodGet, a.url("/events"), nil)
	require.NoError(t, err)
	req.Header.Set("Cookie", cookieHeader(token))
	resp, err := attackerClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	// A few renewal intervals of a live session: the stream goes on.
	for range 2 * interval / (50 * time.Millisecond) {
		require.True(t, lines.Scan(), "the stream of a live session ended")
	}
	deleteWithoutTriggers(t, db, token)
	deleted := time.Now()
	ended := make(chan time.Time, 1)
	go func() {
		for lines.Scan() {
		}
		ended <- time.Now()
	}()
	select {
	case at := <-ended:
		took := at.Sub(deleted)
		t.Logf("the stream ended %v after the row went", took.Round(time.Millisecond))
		// A renewal interval, the watcher's tick, and a second for a busy machine.
		assert.Less(t, took, interval+250*time.Millisecond+time.Second)
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its session")
	}
	assert.Equal(t, float64(1), a.metric(t, "requests_ended_total", "when", "during_response"))
}
