package pgsession

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/store"
)

// The app's connection to the database's announcements, and what it must
// know about the database URL for them: whether it leads through a
// transaction pooler.

// detectPooler finds out whether the database URL leads through a
// transaction pooler, and makes the pool's connections run statements
// accordingly: named and prepared once when direct, unnamed when pooled.
func (a *App) detectPooler(ctx context.Context) error {
	mode := a.pool.mode
	// Directly, the probe's notification comes back in milliseconds; the
	// wait is long so that a loaded machine is not taken for a pooler.
	pooled, err := store.DetectPooler(ctx, a.connString, 3*time.Second)
	if err != nil {
		return fmt.Errorf("pg_session: connecting to PostgreSQL at %s: %w", a.target, err)
	}
	// Connections made before now keep running statements unnamed, which
	// is correct either way; closing them would cut requests in progress.
	mode.SetPooled(pooled)
	if pooled && !mode.Explicit() {
		a.logger.Info("the database URL leads through a transaction pooler: statements run unnamed",
			zap.String("database", a.target))
	}
	return nil
}

// invalidate applies what the database announced to memory and to the
// requests in progress.
func (a *App) invalidate(inv store.Invalidation) {
	a.cache.Invalidate(inv)
	a.inflight.Invalidate(inv)
}

// forgetUser drops a user's sessions from this server's memory and looks
// again at their requests in progress, at once, after this server changed
// them; the database's announcement does the same for the other servers a
// moment later.
func (a *App) forgetUser(id store.UserID) {
	a.invalidate(store.Invalidation{Users: []store.UserID{id}})
}

// listen keeps memory up to date through the listening connection, and
// says in the log when it cannot. It runs as long as the memory is kept,
// across reloads: st and connString are those of the config that started
// it, which the memory's key guarantees every later config shares.
func (m *sharedMemory) listen(ctx context.Context, st *store.Store, connString, target string) {
	var mu sync.Mutex
	lostSince, warnedNoEcho, listening := time.Time{}, false, false
	l := &store.Listener{
		Store:        st,
		ConnString:   connString,
		PingInterval: pingInterval,
		Invalidate:   m.invalidate,
		Confirmed: func(sent time.Time) {
			m.cache.Confirmed(sent)
			mu.Lock()
			defer mu.Unlock()
			if !listening {
				listening = true
				m.logger.Load().Info("listening for session changes: known sessions are served from memory",
					zap.Int("cache_size", m.cache.Size()))
			}
			if !lostSince.IsZero() {
				m.logger.Load().Info("listening for session changes again: sessions are served from memory",
					zap.Duration("was_down_for", time.Since(lostSince).Round(time.Millisecond)))
				lostSince = time.Time{}
			}
		},
		Lost: func(err error) {
			m.cache.Lost()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, store.ErrNoEcho) && !warnedNoEcho:
				warnedNoEcho = true
				m.logger.Load().Warn("cannot listen for session changes through "+target+": notifications do not come back "+
					"(a transaction pooler such as PgBouncer?); set listen_database_url to a direct connection. "+
					"Until then every request is checked in the database", zap.Error(err))
			case errors.Is(err, store.ErrNoEcho):
			case lostSince.IsZero():
				lostSince = time.Now()
				m.logger.Load().Warn("lost the connection that listens for session changes: every request is checked "+
					"in the database until it is back", zap.Error(err))
			}
		},
	}
	l.Run(ctx)
}

// invalidate applies what the database announced to memory and to the
// requests in progress, of every config that shares them.
func (m *sharedMemory) invalidate(inv store.Invalidation) {
	m.cache.Invalidate(inv)
	m.inflight.Invalidate(inv)
}
