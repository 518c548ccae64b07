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
	cache    *engine.Cache
	inflight *engine.Flights
	// logger is the logger of the config that started last, where the
	// listener logs: a reload may change where the logs go.
	logger atomic.Pointer[zap.Logger]

	mu        sync.Mutex
	listening bool               // whether the listener was started
	cancel    context.CancelFunc // ends the listener; nil until it starts
	wg        sync.WaitGroup
}

func newSharedMemory(cacheSize int, grace time.Duration, logger *zap.Logger) *sharedMemory {
	m := &sharedMemory{cache: engine.NewCache(cacheSize, grace, trustWindow), inflight: engine.NewFlights(privateResponse)}
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
// and reports whether one did: then this config is a reload.
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
	m.wg.Go(func() { m.listen(ctx, st, connString, target) })
	return false
}

// sessions is about how many sessions the memory holds.
func (m *sharedMemory) sessions() int {
	return m.cache.Sessions()
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
	m.cache.Lost()
	m.cache.Stop()
	return nil
}
