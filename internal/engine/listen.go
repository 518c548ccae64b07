package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/store"
)

// The connection that keeps memory up to date: what the database announces
// reaches the sessions kept and the requests in progress, and the log says
// when memory can be trusted and when it cannot.

// Memory is what a server keeps in memory and the listening connection
// keeps up to date: the sessions it checked and its requests in progress.
type Memory struct {
	Cache   *Cache
	Flights *Flights
}

// Invalidate applies what the database announced to memory and to the
// requests in progress.
func (m Memory) Invalidate(inv store.Invalidation) {
	m.Cache.Invalidate(inv)
	m.Flights.Invalidate(inv)
}

// Listen keeps memory up to date through a connection to connString that
// proves it is caught up every pingInterval, and says in the log when it
// cannot, until ctx ends. target names the database in the lines, without
// the password; logger is asked for the logger at each line, as the config
// that logs may change while the connection runs.
func (m Memory) Listen(ctx context.Context, st *store.Store, connString, target string,
	pingInterval time.Duration, logger func() *zap.Logger) {
	var mu sync.Mutex
	lostSince, warnedNoEcho, listening := time.Time{}, false, false
	l := &store.Listener{
		Store:        st,
		ConnString:   connString,
		PingInterval: pingInterval,
		Invalidate:   m.Invalidate,
		Confirmed: func(sent time.Time) {
			m.Cache.Confirmed(sent)
			mu.Lock()
			defer mu.Unlock()
			if !listening {
				listening = true
				logger().Info("listening for session changes: known sessions are served from memory",
					zap.Int("cache_size", m.Cache.Size()))
			}
			if !lostSince.IsZero() {
				logger().Info("listening for session changes again: sessions are served from memory",
					zap.Duration("was_down_for", time.Since(lostSince).Round(time.Millisecond)))
				lostSince = time.Time{}
			}
		},
		Lost: func(err error) {
			m.Cache.Lost()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, store.ErrNoEcho) && !warnedNoEcho:
				warnedNoEcho = true
				logger().Warn("cannot listen for session changes through "+target+": notifications do not come back "+
					"(a transaction pooler such as PgBouncer?); set listen_database_url to a direct connection. "+
					"Until then every request is checked in the database", zap.Error(err))
			case errors.Is(err, store.ErrNoEcho):
			case lostSince.IsZero():
				lostSince = time.Now()
				logger().Warn("lost the connection that listens for session changes: every request is checked "+
					"in the database until it is back", zap.Error(err))
			}
		},
	}
	l.Run(ctx)
}
