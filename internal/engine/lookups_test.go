package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// Requests of one session that reach the database together share lookups,
// and each is answered by a lookup that began after it asked: so a session
// revoked before a request came can never be served to it from a lookup
// that began earlier.
func TestLookupsOfOneSessionAreSharedButNeverBeganBeforeTheRequest(t *testing.T) {
	t.Parallel()
	l := NewLookups()
	key := KeyOf("token-a")
	var clock atomic.Int64 // orders asks and lookup starts
	var queries atomic.Int64
	query := func(context.Context) (store.LiveSession, bool, error) {
		queries.Add(1)
		began := clock.Add(1)
		time.Sleep(200 * time.Microsecond) // a round trip to the database
		// The answer says when its lookup began.
		return store.LiveSession{IdleTimeout: time.Duration(began)}, true, nil
	}

	const requests = 64
	for round := range 20 {
		queries.Store(0)
		var wg sync.WaitGroup
		for range requests {
			wg.Go(func() {
				asked := clock.Add(1)
				row, found, err := l.Look(context.Background(), key, query)
				require.NoError(t, err)
				require.True(t, found)
				assert.Greater(t, int64(row.IdleTimeout), asked, "round %d: answered by a lookup that began before the request", round)
			})
		}
		wg.Wait()
		assert.Less(t, queries.Load(), int64(requests), "round %d: no lookup was shared", round)
		l.mu.Lock()
		assert.Empty(t, l.running, "nothing left under way")
		l.mu.Unlock()
	}
}

// Another session's lookup is not waited for, and a request whose client
// leaves stops waiting while the lookup it queued still answers the others.
func TestLookupsOfOtherSessionsAndLeavingClients(t *testing.T) {
	t.Parallel()
	l := NewLookups()
	a, b := KeyOf("token-a"), KeyOf("token-b")
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	slow := func(context.Context) (store.LiveSession, bool, error) {
		started <- struct{}{}
		<-release
		return store.LiveSession{Username: "a"}, true, nil
	}
	go l.Look(context.Background(), a, slow)
	<-started

	// b does not wait for a.
	row, _, err := l.Look(context.Background(), b, func(context.Context) (store.LiveSession, bool, error) {
		return store.LiveSession{Username: "b"}, true, nil
	})
	require.NoError(t, err)
	assert.Equal(t, "b", row.Username)

	// A request queued behind a's lookup, and one that joins it and leaves.
	queued := make(chan string, 1)
	go func() {
		row, _, _ := l.Look(context.Background(), a, slow)
		queued <- row.Username
	}()
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.running[a] != nil
	}, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		_, _, err := l.Look(ctx, a, slow)
		left <- err
	}()
	cancel()
	assert.ErrorIs(t, <-left, context.Canceled)

	close(release)
	assert.Equal(t, "a", <-queued)
}
