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
	a.cache.invalidate(inv)
	a.inflight.invalidate(inv)
}

// forgetUser drops a user's sessions from this server's memory and looks
// again at their requests in progress, at once, after this server changed
// them; the database's announcement does the same for the other servers a
// moment later.
func (a *App) forgetUser(id store.UserID) {
	a.invalidate(store.Invalidation{Users: []store.UserID{id}})
}

// listen keeps memory up to date through the listening connection, and
// says in the log when it cannot.
func (a *App) listen(ctx context.Context) {
	var mu sync.Mutex
	lostSince, warnedNoEcho, listening := time.Time{}, false, false
	l := &store.Listener{
		Store:        a.store,
		ConnString:   a.listenTo,
		PingInterval: pingInterval,
		Invalidate:   a.invalidate,
		Confirmed: func(sent time.Time) {
			a.cache.confirmed(sent)
			mu.Lock()
			defer mu.Unlock()
			if !listening {
				listening = true
				a.logger.Info("listening for session changes: known sessions are served from memory",
					zap.Int("cache_size", a.cache.size()))
			}
			if !lostSince.IsZero() {
				a.logger.Info("listening for session changes again: sessions are served from memory",
					zap.Duration("was_down_for", time.Since(lostSince).Round(time.Millisecond)))
				lostSince = time.Time{}
			}
		},
		Lost: func(err error) {
			a.cache.lost()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, store.ErrNoEcho) && !warnedNoEcho:
				warnedNoEcho = true
				a.logger.Warn("cannot listen for session changes through "+a.target+": notifications do not come back "+
					"(a transaction pooler such as PgBouncer?); set listen_database_url to a direct connection. "+
					"Until then every request is checked in the database", zap.Error(err))
			case errors.Is(err, store.ErrNoEcho):
			case lostSince.IsZero():
				lostSince = time.Now()
				a.logger.Warn("lost the connection that listens for session changes: every request is checked "+
					"in the database until it is back", zap.Error(err))
			}
		},
	}
	l.Run(ctx)
}
