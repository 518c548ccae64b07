package pgsession

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/migrations"
	"github.com/pgsession/caddy-pgsession/store"
)

// Defaults of the app's options.
const (
	DefaultCleanupInterval = time.Hour
	defaultDatabaseURL     = "{env.DATABASE_URL}"
	// startTimeout bounds the first connection and the migrations at start,
	// so a database that does not answer fails the start instead of hanging it.
	startTimeout = 30 * time.Second
)

// App is the pg_session app: it owns the connection pool, installs the
// schema at start and runs the cleanup job. Handlers find it by name, so a
// site needs the `pg_session` global option for its handlers to work.
type App struct {
	// DatabaseURL is the PostgreSQL connection string (URL or key=value
	// form); placeholders such as {env.DATABASE_URL} are expanded.
	// Default: {env.DATABASE_URL}.
	DatabaseURL string `json:"database_url,omitempty"`

	// Schema is the PostgreSQL schema holding the plugin's tables.
	// Default: pgsession.
	Schema string `json:"schema,omitempty"`

	// CleanupInterval is how often expired sessions are deleted. Default: 1h.
	CleanupInterval caddy.Duration `json:"cleanup_interval,omitempty"`

	// MaxConnections caps the pool's connections to PostgreSQL. Default:
	// pgx's, the larger of 4 and the number of CPUs.
	MaxConnections int `json:"max_connections,omitempty"`

	store   *store.Store
	poolKey string
	target  string // host:port/database, for messages: never the password
	logger  *zap.Logger

	cancel context.CancelFunc
	wg     *sync.WaitGroup
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "pg_session",
		New: func() caddy.Module { return new(App) },
	}
}

// pools shares connection pools across config reloads: the new config is
// provisioned before the old one is cleaned up, so the pool carries over
// and a reload neither drops nor doubles connections.
var pools = caddy.NewUsagePool()

// sharedPool is the value pools holds.
type sharedPool struct{ pool *pgxpool.Pool }

// Destruct closes the pool once no config uses it.
func (p sharedPool) Destruct() error {
	p.pool.Close()
	return nil
}

// Provision builds the pool without connecting, so `caddy validate` works
// without a reachable database.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if a.DatabaseURL == "" {
		a.DatabaseURL = defaultDatabaseURL
	}
	if a.Schema == "" {
		a.Schema = migrations.DefaultSchema
	}
	if a.CleanupInterval == 0 {
		a.CleanupInterval = caddy.Duration(DefaultCleanupInterval)
	}
	if a.CleanupInterval < 0 {
		return fmt.Errorf("cleanup_interval must be positive")
	}
	if err := migrations.ValidateSchema(a.Schema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if a.MaxConnections < 0 {
		return fmt.Errorf("max_connections must not be negative")
	}

	url := caddy.NewReplacer().ReplaceAll(a.DatabaseURL, "")
	if url == "" {
		return errors.New("database_url is empty: set it in the pg_session global option or set DATABASE_URL")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's own message may quote the URL, password included, so it is not passed on.
		return errors.New("database_url cannot be parsed: it should look like " +
			"postgres://user:password@host:5432/database, with special characters in the password percent-encoded")
	}
	if a.MaxConnections > 0 {
		cfg.MaxConns = int32(a.MaxConnections)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "caddy-pgsession"
	a.target = net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))) + "/" + cfg.ConnConfig.Database

	// The key holds a hash of the URL rather than the URL, which may carry a password.
	sum := sha256.Sum256([]byte(url + "\x00" + strconv.Itoa(a.MaxConnections)))
	a.poolKey = fmt.Sprintf("%x", sum)
	val, _, err := pools.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			return nil, err
		}
		return sharedPool{pool}, nil
	})
	if err != nil {
		a.poolKey = ""
		return fmt.Errorf("creating connection pool for %s: %w", a.target, err)
	}
	a.store, err = store.New(val.(sharedPool).pool, store.Options{Schema: a.Schema})
	if err != nil {
		return err
	}
	return nil
}

// Start connects, installs or upgrades the schema and starts the cleanup job.
func (a *App) Start() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("pg_session: connecting to PostgreSQL at %s: %w", a.target, err)
	}
	n, err := a.store.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("pg_session: installing schema %s at %s: %w", a.Schema, a.target, err)
	}
	if n > 0 {
		a.logger.Info("installed schema", zap.String("schema", a.Schema), zap.Int("migrations", n))
	}
	if legacy, err := a.store.LegacyUsernames(ctx); err == nil && len(legacy) > 0 {
		a.logger.Warn("some usernames do not fit the username profile (RFC 8265) or look like another account's; "+
			"they log in by their exact name unless a look-alike account exists: consider renaming or deleting them",
			zap.Strings("usernames", legacy))
	}

	loopCtx, stop := context.WithCancel(context.Background())
	a.cancel = stop
	a.wg = new(sync.WaitGroup)
	a.wg.Add(1)
	go a.cleanupLoop(loopCtx)
	return nil
}

// Stop ends the cleanup job and waits for a round in progress.
func (a *App) Stop() error {
	if a.cancel != nil {
		a.cancel()
		a.wg.Wait()
	}
	return nil
}

// Cleanup releases this config's hold on the shared pool; it is safe after a
// partial Provision.
func (a *App) Cleanup() error {
	if a.poolKey == "" {
		return nil
	}
	_, err := pools.Delete(a.poolKey)
	a.poolKey = ""
	return err
}

// Store returns the session store the app manages.
func (a *App) Store() *store.Store { return a.store }

// cleanupLoop deletes expired sessions now and then every CleanupInterval,
// in the manner of the tls app's storage cleaner.
func (a *App) cleanupLoop(ctx context.Context) {
	defer a.wg.Done()
	ticker := time.NewTicker(time.Duration(a.CleanupInterval))
	defer ticker.Stop()
	for {
		a.cleanupRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// cleanupLockKey is held by the one server that runs a cleanup round; the
// others sharing the database skip that round.
func cleanupLockKey(schema string) int64 {
	sum := sha256.Sum256([]byte("caddy-pgsession cleanup " + schema))
	var k int64
	for _, b := range sum[:8] {
		k = k<<8 | int64(b)
	}
	return k
}

func (a *App) cleanupRound(ctx context.Context) {
	defer func() {
		if err := recover(); err != nil {
			a.logger.Error("panic in session cleanup", zap.Any("error", err), zap.Stack("stack"))
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(a.CleanupInterval))
	defer cancel()

	conn, err := a.store.Pool().Acquire(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.logger.Error("session cleanup: connecting", zap.String("database", a.target), zap.Error(err))
		}
		return
	}
	defer conn.Release()
	key := cleanupLockKey(a.Schema)
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&locked); err != nil {
		if ctx.Err() == nil {
			a.logger.Error("session cleanup: taking lock", zap.Error(err))
		}
		return
	}
	if !locked {
		a.logger.Debug("session cleanup: another server is running this round")
		return
	}
	defer func() {
		unlockCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(unlockCtx, "SELECT pg_advisory_unlock($1)", key); err != nil {
			// Closing the connection is what releases a session-level lock.
			conn.Conn().Close(unlockCtx)
		}
	}()

	start := time.Now()
	n, err := a.store.CleanupExpiredSessions(ctx)
	if err != nil && ctx.Err() == nil {
		a.logger.Error("session cleanup", zap.Int64("deleted", n), zap.Error(err))
		return
	}
	attempts, err := a.store.CleanupLoginAttempts(ctx)
	if err != nil && ctx.Err() == nil {
		a.logger.Error("login attempt cleanup", zap.Int64("deleted", attempts), zap.Error(err))
	}
	a.logger.Info("deleted expired sessions", zap.Int64("deleted", n),
		zap.Int64("login_attempts_deleted", attempts), zap.Duration("took", time.Since(start)))
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
