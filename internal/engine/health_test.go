package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// An outage is a server going or gone, or no answer at all; an error the
// server answered with (a constraint, a cancelled query) is not one.
func TestIsOutage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		outage bool
	}{
		{&pgconn.PgError{Code: "08006"}, true},  // connection_failure
		{&pgconn.PgError{Code: "08P01"}, true},  // protocol_violation, class 08 as well
		{&pgconn.PgError{Code: "57P01"}, true},  // admin_shutdown
		{&pgconn.PgError{Code: "57P02"}, true},  // crash_shutdown
		{&pgconn.PgError{Code: "57P03"}, true},  // cannot_connect_now
		{&pgconn.PgError{Code: "57P04"}, true},  // database_dropped
		{&pgconn.PgError{Code: "57P05"}, true},  // idle_session_timeout
		{&pgconn.PgError{Code: "57014"}, false}, // query_canceled: the server answered
		{&pgconn.PgError{Code: "23505"}, false}, // unique_violation
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined_table
		{fmt.Errorf("checking the session: %w", &pgconn.PgError{Code: "57P01"}), true},
		{errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), true},
		{context.DeadlineExceeded, true},
	} {
		assert.Equal(t, tc.outage, isOutage(tc.err), "%v", tc.err)
	}
}

// An outage says so once at ERROR, sums itself up at most once per
// SummaryEvery, and once back, after the settle time and a ping that
// answers, says so at INFO naming the server that answered, with what the
// outage cost; an error the database answered with is logged on its own
// and starts no outage, and a client that left is no failure at all.
func TestHealthLogsAnOutageOnceAndItsEnd(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.InfoLevel)
	pings := make(chan error, 1)
	h := &Health{Logger: zap.New(core), Target: "db1:5432/app", Timeout: time.Second,
		SummaryEvery: 200 * time.Millisecond,
		ConnectedTo: func(ctx context.Context) (string, error) {
			_, ok := ctx.Deadline()
			assert.True(t, ok, "the ping is bounded by Timeout")
			return "db2:5432/app", <-pings
		}}
	down := errors.New("dial tcp: connection refused")

	h.Failed(context.Canceled, false)
	h.Failed(&pgconn.PgError{Code: "23505"}, false)
	require.Equal(t, []string{"session store query failed"}, messages(logs))
	assert.False(t, h.RecentlyFailed(time.Now()), "a constraint is no outage")

	h.Failed(down, false)
	h.Failed(down, true)
	h.ServedFromMemory()
	assert.True(t, h.RecentlyFailed(time.Now()))
	assert.False(t, h.RecentlyFailed(time.Now().Add(time.Second)), "tried again after retryEvery")
	time.Sleep(250 * time.Millisecond)
	h.Failed(down, false)
	h.Failed(down, false) // within SummaryEvery of the summary
	require.Equal(t, []string{"session store query failed",
		"session store unreachable: answering 503 except to sessions confirmed within offline_grace",
		"session store still unreachable"}, messages(logs))
	summary := logs.All()[2].ContextMap()
	assert.Equal(t, int64(2), summary["requests_refused"])
	assert.Equal(t, int64(2), summary["requests_served_from_memory"])

	// An answer followed by a ping that fails does not end the outage; the
	// next answer starts the settle time again.
	pings <- down
	h.OK()
	time.Sleep(settleTime + 200*time.Millisecond)
	assert.True(t, h.down.Load(), "the ping failed: still down")
	assert.Len(t, logs.All(), 3)

	pings <- nil
	h.OK()
	h.OK() // the settle time already runs
	require.Eventually(t, func() bool { return logs.Len() == 4 }, 5*time.Second, 10*time.Millisecond)
	assert.False(t, h.down.Load())
	require.Equal(t, "session store reachable again", logs.All()[3].Message)
	back := logs.All()[3].ContextMap()
	assert.Equal(t, "db2:5432/app", back["database"])
	assert.Equal(t, int64(3), back["requests_refused"])
	assert.Equal(t, int64(2), back["requests_served_from_memory"])
}

// A failure during the settle time continues the same outage: a crashing
// database resets its connections milliseconds apart, and each would
// otherwise end one outage and start another.
func TestHealthAFailureWhileSettlingContinuesTheOutage(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.InfoLevel)
	h := &Health{Logger: zap.New(core), Target: "db1:5432/app"}
	down := errors.New("dial tcp: connection refused")
	h.Failed(down, false)
	h.OK()
	h.Failed(down, false)
	time.Sleep(settleTime + 200*time.Millisecond)
	assert.True(t, h.down.Load())
	h.OK()
	require.Eventually(t, func() bool { return logs.Len() == 2 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, []string{"session store unreachable: answering 503 except to sessions confirmed within offline_grace",
		"session store reachable again"}, messages(logs))
	assert.Equal(t, "db1:5432/app", logs.All()[1].ContextMap()["database"], "without ConnectedTo, the target")
}

func messages(logs *observer.ObservedLogs) []string {
	var m []string
	for _, e := range logs.All() {
		m = append(m, e.Message)
	}
	return m
}
