package pgsession

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/store"
)

// What the configs of one process share across reloads: the new config is
// provisioned before the old one is cleaned up, so what it takes over must
// outlive either.

// pools shares connection pools across config reloads: the new config is
// provisioned before the old one is cleaned up, so the pool carries over
// and a reload neither drops nor doubles connections.
var pools = caddy.NewUsagePool()

// sharedPool is the value pools holds: the pool, how its connections run
// statements, found out once by the first config that starts, and the
// metrics, which carry over reloads with it.
type sharedPool struct {
	pool     *pgxpool.Pool
	mode     *store.StatementMode
	detected *sync.Once
	metrics  *metrics
	// installed holds the schemas this pool has installed or found up to
	// date: a reload need not check again, as the binary, and with it the
	// migrations, is the same.
	installed *sync.Map
}

// Destruct closes the pool once no config uses it.
func (p sharedPool) Destruct() error {
	p.pool.Close()
	return nil
}

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

// memories shares what a server keeps in memory across config reloads, as
// pools shares the pool: the sessions it checked, its requests in progress
// and the connection that keeps both up to date. Without it every reload
// would start with empty memory, and every live session would cost a query
// again. The key holds every option that shapes the memory, so a reload
// that changes one gets new memory, and the old goes with the old config.
var memories = caddy.NewUsagePool()

// sharedMemory is the value memories holds. The listener starts with the
// first config that starts, and runs until the last config using the
// memory is cleaned up: on a reload the new config starts before the old
// one stops, so the listener is never down in between, and never doubled.
type sharedMemory struct {
	engine.Memory
	// logger is the logger of the config that started last, where the
	// listener logs: a reload may change where the logs go.
	logger atomic.Pointer[zap.Logger]

	mu        sync.Mutex
	listening bool               // whether the listener was started
	cancel    context.CancelFunc // ends the listener; nil until it starts
	wg        sync.WaitGroup
}

func newSharedMemory(cacheSize int, grace time.Duration, logger *zap.Logger) *sharedMemory {
	m := &sharedMemory{Memory: engine.Memory{Cache: engine.NewCache(cacheSize, grace, trustWindow),
		Flights: engine.NewFlights(privateResponse)}}
	m.logger.Store(logger)
	return m
}

// keyOfMemory names the memory of a config: the pool, the schema, the
// options that shape the cache, and the listening connection. It holds a
// hash rather than the URLs, which may carry a password.
func (a *App) keyOfMemory(cacheSize int, grace time.Duration) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%d\x00%t\x00%s\x00%s",
		a.poolKey, a.Schema, cacheSize, grace, a.ListenDatabaseURL != "", a.listenTo, a.instance))
	return fmt.Sprintf("%x", sum)
}

// startListening starts the listener unless a config started it before,
// and reports whether one did: then this config is a reload. The listener
// runs as long as the memory is kept, across reloads: st and connString
// are those of the config that started it, which the memory's key
// guarantees every later config shares.
func (m *sharedMemory) startListening(st *store.Store, connString, target string) (running bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listening {
		return true
	}
	m.listening = true
	// The listener's context is the memory's own: Caddy's is the config's,
	// which a reload cancels while the memory lives on.
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.wg.Go(func() { m.Listen(ctx, st, connString, target, pingInterval, m.logger.Load) })
	return false
}

// sessions is about how many sessions the memory holds.
func (m *sharedMemory) sessions() int {
	return m.Cache.Sessions()
}

// Destruct ends the listener once no config uses the memory, and waits for it.
func (m *sharedMemory) Destruct() error {
	m.mu.Lock()
	cancel := m.cancel
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	m.wg.Wait()
	// A handler of a cleaned-up config may still serve a request: with
	// nobody listening, it must ask the database.
	m.Cache.Lost()
	m.Cache.Stop()
	return nil
}

// forgetUser drops a user's sessions from this server's memory and looks
// again at their requests in progress, at once, after this server changed
// them; the database's announcement does the same for the other servers a
// moment later.
func (a *App) forgetUser(id store.UserID) {
	engine.Memory{Cache: a.cache, Flights: a.inflight}.Invalidate(store.Invalidation{Users: []store.UserID{id}})
}

// lookUpByID checks a session in the database by its id, for the requests
// in flight; one found gone is forgotten from memory too.
func (a *App) lookUpByID(ctx context.Context, id store.SessionID) (engine.Session, error) {
	row, err := a.store.GetSessionByID(ctx, id)
	if err != nil {
		return engine.Session{}, err
	}
	if row == nil {
		// The id may be an API token's, which shares the memory and the
		// requests in flight with sessions.
		if t, found, err := a.store.CheckAPIToken(ctx, id); err != nil || found {
			key, _ := engine.KeyOfID(id)
			return engine.FromLive(key, t.LiveSession, time.Now()), err
		}
		if key, ok := engine.KeyOfID(id); ok {
			a.cache.Forget(key)
		}
		return engine.Session{}, nil
	}
	return engine.FromStore(row, time.Now()), nil
}

// renewed applies a renewal made at now: touch says whether this server's
// write changed the row, another server's had, or the session is gone. A
// live session is kept with its new last use (see engine.Cache.Renewed). A
// gone session, whose end no trigger announced, is forgotten and its
// requests in flight end.
func (a *App) renewed(s engine.Session, now time.Time, touch store.Touch, epoch uint64) {
	if touch == store.SessionGone {
		a.cache.Forget(s.Key())
		a.inflight.End(s.ID())
		return
	}
	a.cache.Renewed(s, now, touch == store.SessionTouched, epoch)
}

// appMemory is what the routes may change in the app's memory
// (routes.Memory).
type appMemory struct{ a *App }

func (m appMemory) Forget(key engine.Key)      { m.a.cache.Forget(key) }
func (m appMemory) ForgetUser(id store.UserID) { m.a.forgetUser(id) }
func (m appMemory) Epoch() uint64              { return m.a.cache.Epoch() }
func (m appMemory) Renewed(s engine.Session, now time.Time, touch store.Touch, epoch uint64) {
	m.a.renewed(s, now, touch, epoch)
}
func (m appMemory) StoreOK()              { m.a.health.OK() }
func (m appMemory) StoreFailed(err error) { m.a.health.Failed(err, false) }
