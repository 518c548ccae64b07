package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/store"
)

type count struct{ n atomic.Int64 }

func (c *count) Inc() { c.n.Add(1) }

// testSessions is a look-up whose database is check, with memory trusted
// from now on.
func testSessions(check func(context.Context, store.SessionID) (store.LiveSession, bool, error)) (*Sessions, *count, *count, *count) {
	hit, miss, grace := new(count), new(count), new(count)
	c := NewCache(100, time.Minute, time.Second)
	c.Confirmed(time.Now())
	return &Sessions{Cache: c, Lookups: NewLookups(), Health: &Health{Logger: zap.NewNop(), Timeout: time.Second},
		Check: check, Timeout: time.Second, Hit: hit, Miss: miss, Grace: grace,
		Length: store.TokenLength, Valid: store.ValidToken}, hit, miss, grace
}

const lookToken = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"

// The database is asked once for a token; while memory is trusted, the
// next requests are answered from it, and each look-up counts once.
func TestLookAsksTheDatabaseOnceThenMemory(t *testing.T) {
	var asked atomic.Int64
	ss, hit, miss, _ := testSessions(func(_ context.Context, id store.SessionID) (store.LiveSession, bool, error) {
		asked.Add(1)
		assert.Equal(t, store.HashToken(lookToken), id, "the database is asked for the token's hash")
		now := time.Now()
		return store.LiveSession{UserID: "user-1", Username: "alice", ExpiresAt: now.Add(time.Hour),
			LastSeenAt: now, CheckedAt: now}, true, nil
	})
	ctx := context.Background()
	for range 3 {
		s, err := ss.Look(ctx, lookToken, time.Now())
		require.NoError(t, err)
		assert.Equal(t, "alice", s.User().Username)
	}
	assert.EqualValues(t, 1, asked.Load())
	assert.EqualValues(t, 1, miss.n.Load())
	assert.EqualValues(t, 2, hit.n.Load())
}

// A token of the wrong shape never reaches the database, and an unknown
// one is no session and no error.
func TestLookRefusesMalformedTokensWithoutAQuery(t *testing.T) {
	var asked atomic.Int64
	ss, _, miss, _ := testSessions(func(context.Context, store.SessionID) (store.LiveSession, bool, error) {
		asked.Add(1)
		return store.LiveSession{}, false, nil
	})
	ctx := context.Background()
	for _, token := range []string{"", "short", lookToken + "x", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO!Q"} {
		s, err := ss.Look(ctx, token, time.Now())
		assert.NoError(t, err)
		assert.True(t, s.IsZero(), "%q", token)
	}
	assert.Zero(t, asked.Load())
	s, err := ss.Look(ctx, lookToken, time.Now())
	assert.NoError(t, err)
	assert.True(t, s.IsZero())
	assert.EqualValues(t, 1, asked.Load())
	assert.EqualValues(t, 1, miss.n.Load())
}

// When the database fails, a session confirmed within offline_grace is
// served from memory and counted as such; one memory does not hold is the
// database's error, for a 503.
func TestLookServesFromMemoryDuringAnOutage(t *testing.T) {
	down := errors.New("dial tcp: connection refused")
	failing := false
	ss, _, miss, grace := testSessions(func(context.Context, store.SessionID) (store.LiveSession, bool, error) {
		if failing {
			return store.LiveSession{}, false, down
		}
		now := time.Now()
		return store.LiveSession{UserID: "user-1", Username: "alice", ExpiresAt: now.Add(time.Hour),
			LastSeenAt: now, CheckedAt: now}, true, nil
	})
	ctx := context.Background()
	_, err := ss.Look(ctx, lookToken, time.Now())
	require.NoError(t, err)
	ss.Cache.Lost() // the listener went down with the database
	failing = true
	s, err := ss.Look(ctx, lookToken, time.Now())
	require.NoError(t, err)
	assert.Equal(t, "alice", s.User().Username)
	assert.EqualValues(t, 1, grace.n.Load())

	_, err = ss.Look(ctx, "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkg", time.Now())
	assert.ErrorIs(t, err, down)
	assert.EqualValues(t, 2, miss.n.Load())
}
