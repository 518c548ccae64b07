package engine

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// During a database outage every request that needs the database fails the
// same way, and a line for each would bury the log (86,000 lines for a 10 s
// outage under load). So the gate says once, at ERROR, that the store became
// unreachable, at most once per summaryInterval how it is going, and once,
// at INFO, that it is back: one outage, one pair of lines.

// summaryInterval is how often an ongoing outage is summed up in the log.
const summaryInterval = 10 * time.Second

// settleTime is how long the store must answer without a failure before it
// counts as back. A database that crashes (pg_ctl stop -m immediate) resets
// the pool's connections a few milliseconds apart, and a look-up that was
// answered just before the crash, or a dead connection used just after a
// restart, would otherwise end the outage and start another within
// milliseconds, each with a pair of lines.
const settleTime = time.Second

// Health follows whether the session store answers. Its exported fields
// are set before the first request, and not changed after.
type Health struct {
	Logger *zap.Logger
	Target string // the configured host:port/database (every host of a multi-host URL)
	// ConnectedTo names the server the pool's connections reach now, so
	// the line that says the store is back names the host that answered
	// (after a failover, the new primary) rather than the first one listed.
	// Without it the line names Target, and the outage ends without a ping.
	ConnectedTo func(context.Context) (string, error)
	// Timeout bounds ConnectedTo, as a look-up is bounded: through a
	// pooler whose database is gone the ping would otherwise wait minutes.
	Timeout time.Duration
	// SummaryEvery is summaryInterval unless a test makes it shorter.
	SummaryEvery time.Duration

	down    atomic.Bool
	lastErr atomic.Int64 // when a look-up last failed, Unix nanoseconds
	refused atomic.Int64 // requests answered 503 during this outage
	graced  atomic.Int64 // requests served from memory during this outage
	// answered is when the store first answered again without failing
	// since, Unix nanoseconds; 0 while it has not.
	answered atomic.Int64

	mu          sync.Mutex
	since       time.Time
	lastSummary time.Time
}

// isOutage tells a failure to reach the database from an error the database
// itself reported (a bug, a constraint): only the former is an outage.
func isOutage(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// A connection exception, or an operator's shutdown, a crash or a
		// dropped database, means the server is going or gone. A cancelled
		// query (57014, the same class) is not: the server answered it.
		return pgerrcode.IsConnectionException(pgErr.Code) || serverGoing(pgErr.Code)
	}
	return true
}

// serverGoing reports the codes of class 57 (operator intervention) that
// say the server is shutting down, starting, or can no longer serve this
// session.
func serverGoing(code string) bool {
	switch code {
	case pgerrcode.AdminShutdown, pgerrcode.CrashShutdown, pgerrcode.CannotConnectNow,
		pgerrcode.DatabaseDropped, pgerrcode.IdleSessionTimeout:
		return true
	}
	return false
}

// Failed records a failure of the store, and logs it as the outage's
// first, in a summary, or, when the database itself reported it, on its
// own. served says whether memory answered the request all the same;
// otherwise the request was answered 503, and is counted as refused. A
// request must be recorded here once: the refusal of one that was not
// served is recorded where the 503 is written.
func (h *Health) Failed(err error, served bool) {
	if errors.Is(err, context.Canceled) {
		return // the client went away: the store did nothing wrong
	}
	if !isOutage(err) {
		h.Logger.Error("session store query failed", zap.String("database", h.Target), zap.Error(err))
		return
	}
	if served {
		h.graced.Add(1)
	} else {
		h.refused.Add(1)
	}
	now := time.Now()
	h.lastErr.Store(now.UnixNano())
	h.mu.Lock()
	defer h.mu.Unlock()
	// A failure while the store was settling continues the same outage.
	h.answered.Store(0)
	if !h.down.Load() {
		h.down.Store(true)
		h.since, h.lastSummary = now, now
		h.Logger.Error("session store unreachable: answering 503 except to sessions confirmed within offline_grace",
			zap.String("database", h.Target), zap.Error(err))
		return
	}
	if now.Sub(h.lastSummary) >= cmp.Or(h.SummaryEvery, summaryInterval) {
		h.lastSummary = now
		h.Logger.Warn("session store still unreachable", zap.String("database", h.Target),
			zap.Duration("for", now.Sub(h.since).Round(time.Millisecond)),
			zap.Int64("requests_refused", h.refused.Load()), zap.Int64("requests_served_from_memory", h.graced.Load()),
			zap.Error(err))
	}
}

// RecentlyFailed reports whether the store is down and was tried within
// the last retryEvery: a session memory can answer for need not wait for
// yet another failed connection, and a recovering database is not flooded.
func (h *Health) RecentlyFailed(now time.Time) bool {
	return h.down.Load() && now.UnixNano()-h.lastErr.Load() < int64(retryEvery)
}

// retryEvery is how often, during an outage, a request that memory could
// answer still tries the database, which notices its return.
const retryEvery = 250 * time.Millisecond

// ServedFromMemory counts a request answered from memory during an outage.
func (h *Health) ServedFromMemory() { h.graced.Add(1) }

// OK records that the store answered; it costs one atomic load while all is
// well, and two while the store settles. During an outage the first answer
// starts the settle time, after which the outage ends unless the store
// failed again meanwhile.
func (h *Health) OK() {
	if !h.down.Load() || h.answered.Load() != 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down.Load() || h.answered.Load() != 0 {
		return
	}
	answered := time.Now().UnixNano()
	h.answered.Store(answered)
	time.AfterFunc(settleTime, func() { h.settled(answered) })
}

// settled ends the outage if the store has not failed since it answered
// at answered and answers a ping now, and says so in the log, naming the
// server that answered. The ping matters on a quiet site: the answer may
// have been to a look-up sent just before the outage, and no request since
// may have found the store still gone.
func (h *Health) settled(answered int64) {
	if !h.down.Load() || h.answered.Load() != answered {
		return // it failed again, and a later answer has a settle time of its own
	}
	where := h.Target
	if h.ConnectedTo != nil {
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		server, err := h.ConnectedTo(ctx)
		cancel()
		if err != nil {
			// Still gone: the next answer starts the settle time again.
			h.answered.CompareAndSwap(answered, 0)
			return
		}
		where = server
	}
	h.mu.Lock()
	if !h.down.Load() || !h.answered.CompareAndSwap(answered, 0) {
		h.mu.Unlock()
		return
	}
	h.down.Store(false)
	wasDown := time.Unix(0, answered).Sub(h.since).Round(time.Millisecond)
	refused, graced := h.refused.Swap(0), h.graced.Swap(0)
	h.mu.Unlock()
	h.Logger.Info("session store reachable again", zap.String("database", where),
		zap.Duration("was_down_for", wasDown),
		zap.Int64("requests_refused", refused), zap.Int64("requests_served_from_memory", graced))
}
