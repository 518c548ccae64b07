package pgsession

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/internal/identity"
	"github.com/pgsession/caddy-pgsession/internal/mail"
	"github.com/pgsession/caddy-pgsession/internal/routes"
	"github.com/pgsession/caddy-pgsession/migrations"
	"github.com/pgsession/caddy-pgsession/store"
)

// Defaults of the app's options.
const (
	DefaultCleanupInterval = time.Hour
	DefaultOfflineGrace    = time.Minute
	// DefaultCacheSize is how many sessions a server keeps in memory
	// unless cache_size says otherwise: a few megabytes.
	DefaultCacheSize   = 10_000
	defaultDatabaseURL = "{env.DATABASE_URL}"
	// startTimeout bounds the first connection and the migrations at start,
	// so a database that does not answer fails the start instead of hanging it.
	startTimeout = 30 * time.Second
	// lookupTimeout bounds a request's look-up of its session: through a
	// pooler whose database is gone a query would otherwise wait minutes,
	// and a prompt 503 is better.
	lookupTimeout = 3 * time.Second
	// pingInterval is how often the listening connection proves it is
	// caught up; memory is trusted for trustWindow after the last proof,
	// which bounds how long a silently stalled connection can go unnoticed.
	pingInterval = 250 * time.Millisecond
	trustWindow  = 2 * time.Second
	// countInterval is how often the session gauges are counted, a query
	// over the sessions table: often enough for a dashboard, never per scrape.
	countInterval = time.Minute
)

// App is the pg_session app: it owns the connection pool, the memory of
// checked sessions and the connection that keeps it up to date, installs
// the schema at start and runs the cleanup job. Handlers find it by name,
// so a site needs the `pg_session` global option for its handlers to work.
type App struct {
	// DatabaseURL is the PostgreSQL connection string (URL or key=value
	// form); placeholders such as {env.DATABASE_URL} are expanded. It may
	// go through a transaction pooler such as PgBouncer.
	// Default: {env.DATABASE_URL}.
	DatabaseURL string `json:"database_url,omitempty"`

	// ListenDatabaseURL is a direct connection to the same database, used
	// only to LISTEN for changes that end kept sessions, when DatabaseURL
	// goes through a transaction pooler, where LISTEN cannot work.
	// Default: DatabaseURL.
	ListenDatabaseURL string `json:"listen_database_url,omitempty"`

	// Schema is the PostgreSQL schema holding the plugin's tables.
	// Default: pgsession.
	Schema string `json:"schema,omitempty"`

	// CleanupInterval is how often expired sessions are deleted; 0 is
	// refused. Default: 1h.
	CleanupInterval caddy.Duration `json:"cleanup_interval,omitempty"`

	// MaxConnections caps the pool's connections to PostgreSQL; 0 is
	// refused. Default: pgx's, the larger of 4 and the number of CPUs.
	MaxConnections int `json:"max_connections,omitempty"`

	// CacheSize is how many checked sessions this server keeps in memory,
	// so their requests need no query; 0 turns the memory off. Default: 10000.
	CacheSize *int `json:"cache_size,omitempty"`

	// OfflineGrace is how long after this server last saw a session live
	// in the database it keeps serving the session while the database
	// cannot be reached; 0 turns it off. Default: 1m.
	OfflineGrace *caddy.Duration `json:"offline_grace,omitempty"`

	// HistoryRetention is how long each account's sign-in history is kept:
	// the cleanup job deletes older entries. 0 keeps none, and nothing is
	// recorded. Default: 90d.
	HistoryRetention *caddy.Duration `json:"history_retention,omitempty"`
	// AuditRetention is how long admin actions are kept; 0 keeps them forever. Default: 365d.
	AuditRetention *caddy.Duration `json:"audit_retention,omitempty"`

	// SecretsKey encrypts the secrets stored for second factors (TOTP);
	// placeholders such as {env.PGSESSION_SECRETS_KEY} are expanded. At
	// least 32 characters: `caddy pg-session secrets-key` prints one.
	// Without it, TOTP is not offered. Default: none.
	SecretsKey string `json:"secrets_key,omitempty"`

	// IdentityProviders are the identity_provider blocks: OpenID Connect
	// providers and GitHub, each a button of the login page, in order.
	// Default: none.
	IdentityProviders []identity.Config `json:"identity_providers,omitempty"`
	// SMTP is the mail server of password resets, address checks and
	// invitations; placeholders are expanded in its host, username,
	// password and from. Default: none, and no mail is sent.
	SMTP *mail.Config `json:"smtp,omitempty"`

	zeroes []string // options JSON gave as 0 where 0 is refused (see rangeRules)

	store        *store.Store
	storeOptions store.Options // tests set cheap password hashing here
	pool         sharedPool
	poolKey      string
	target       string // host:port/database, for messages: never the password
	connString   string // database_url, expanded
	listenTo     string
	unexpanded   error // why the database URL could not be expanded at provision; Start reports it
	// unexpandedSecrets is why an identity provider's client_id or
	// client_secret could not be expanded at provision; Start reports it.
	unexpandedSecrets error
	providers         []*identity.Provider // shared across reloads in providerPool, by providerKeys
	providerKeys      []string
	providerAt        []optionPositions // the Caddyfile's identity_provider blocks, while it is parsed
	logger            *zap.Logger
	memory            *sharedMemory // the cache and requests in progress below, with their listener
	memoryKey         string        // memory's key in memories; "" when memory is this config's own
	instance          string        // tests: which in-process server this config belongs to; "" in Caddy
	cache             *engine.Cache
	lookups           *engine.Lookups // the database lookups of sessions under way
	inflight          *engine.Flights
	health            *engine.Health
	sessions          engine.Sessions // the look-up of a cookie's session, over the four above
	tokens            engine.Sessions // the same for API tokens, in the same memory
	server            string          // names this server in the maintenance table
	// shared is what the app gives its handlers' routes: the keys, the
	// metrics and the memory; the ceremony key is set at Start.
	shared     *routes.Shared
	metrics    *metrics
	countEvery time.Duration // countInterval; tests count sooner
	mail       appMail       // the smtp block's sender, and what parsing and provisioning it keep (smtp.go)
	adminAPI   *adminAPISite // the routes of Caddy's admin endpoint (adminapi.go)

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

// Provision builds the pool without connecting, so `caddy validate` works
// without a reachable database.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	// The rules are Validate's; they run first here too, because an
	// invalid config must not open a pool or size a cache.
	if err := a.check(); err != nil {
		return err
	}
	a.DatabaseURL = cmp.Or(a.DatabaseURL, defaultDatabaseURL)
	a.Schema = cmp.Or(a.Schema, migrations.DefaultSchema)
	a.CleanupInterval = cmp.Or(a.CleanupInterval, caddy.Duration(DefaultCleanupInterval))
	cacheSize := DefaultCacheSize
	if a.CacheSize != nil {
		cacheSize = *a.CacheSize
	}
	grace := DefaultOfflineGrace
	if a.OfflineGrace != nil {
		grace = time.Duration(*a.OfflineGrace)
	}

	a.lookups = engine.NewLookups()
	// The health of the store is the config's own: a reload succeeds only
	// after its start reached the database, so there is no outage to carry
	// over, and its lines go to the config's log.
	a.health = &engine.Health{Logger: a.logger, Timeout: lookupTimeout}
	a.sessions = engine.Sessions{Lookups: a.lookups, Health: a.health, Timeout: lookupTimeout,
		Length: store.TokenLength, Valid: store.ValidToken}
	a.tokens = engine.Sessions{Lookups: a.lookups, Health: a.health, Timeout: lookupTimeout,
		Length: store.APITokenLength, Valid: store.IsAPIToken}
	host, _ := os.Hostname()
	var nonce [4]byte
	rand.Read(nonce[:])
	a.server = host + "/" + hex.EncodeToString(nonce[:])

	a.shared = &routes.Shared{Look: a.sessions.Look, Tokens: &a.tokens, Memory: appMemory{a}}
	a.adminAPI = new(adminAPISite)
	if err := a.openSecrets(); err != nil {
		return err
	}
	if err := a.provisionProviders(); err != nil {
		return err
	}
	a.shared.Providers = a.providers

	url, err := a.expand("database_url", a.DatabaseURL)
	listenTo := url
	if err == nil && a.ListenDatabaseURL != "" {
		listenTo, err = a.expand("listen_database_url", a.ListenDatabaseURL)
	}
	if err != nil {
		// caddy validate provisions without starting, often where the
		// variables of the machine that runs Caddy are not set: a URL that
		// cannot be expanded here is reported when Caddy starts.
		a.unexpanded = err
		a.logger.Warn("the database URL cannot be expanded here; caddy run will need it", zap.Error(err))
		// Start fails without the URL: memory of this config's own lets
		// the handlers provision all the same.
		a.useMemory(newSharedMemory(cacheSize, grace, a.logger))
		return nil
	}
	cfg, mode, err := store.PoolConfig(url, "caddy-pgsession")
	if err != nil {
		return fmt.Errorf("database_url: %w", err)
	}
	if a.MaxConnections > 0 {
		cfg.MaxConns = int32(a.MaxConnections)
	}
	a.target = store.Target(cfg.ConnConfig)
	a.health.Target = a.target
	a.connString, a.listenTo = url, listenTo
	if a.ListenDatabaseURL != "" {
		if _, _, err := store.PoolConfig(a.listenTo, ""); err != nil {
			return fmt.Errorf("listen_database_url: %w", err)
		}
	}

	// The key holds a hash of the URL rather than the URL, which may carry a password.
	sum := sha256.Sum256([]byte(url + "\x00" + strconv.Itoa(a.MaxConnections)))
	a.poolKey = fmt.Sprintf("%x", sum)
	val, _, err := pools.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		m := newMetrics()
		cfg.ConnConfig.Tracer = store.NewQueryTimer(m.observeQuery)
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			return nil, err
		}
		m.pool.pool = pool
		return sharedPool{pool: pool, mode: mode, detected: new(sync.Once), metrics: m, installed: new(sync.Map)}, nil
	})
	if err != nil {
		a.poolKey = ""
		return fmt.Errorf("creating connection pool for %s: %w", a.target, err)
	}
	a.pool = val.(sharedPool)
	key := a.keyOfMemory(cacheSize, grace)
	mem, _, _ := memories.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newSharedMemory(cacheSize, grace, a.logger), nil
	})
	a.memoryKey = key
	a.useMemory(mem.(*sharedMemory))
	a.metrics = a.pool.metrics
	for _, ss := range []*engine.Sessions{&a.sessions, &a.tokens} {
		ss.Hit, ss.Miss, ss.Grace = a.metrics.cache[cacheHit], a.metrics.cache[cacheMiss], a.metrics.cache[cacheOfflineGrace]
	}
	if err := a.metrics.register(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	if err := a.provisionMail(); err != nil {
		return err
	}
	opts := a.storeOptions
	opts.Schema = a.Schema
	opts.HistoryRetention = historyRetention(a.HistoryRetention)
	a.store, err = store.New(a.pool.pool, opts)
	a.shared.Store, a.shared.KeepsHistory = a.store, opts.HistoryRetention > 0
	a.shared.Metrics = routes.Metrics{Logins: a.metrics.logins, Factors: a.metrics.factors,
		SessionsCreated: a.metrics.sessionsCreated, Gate: a.metrics.countGate}
	a.health.ConnectedTo = a.store.ConnectedTo
	a.sessions.Check = a.store.CheckSession
	a.tokens.Check = func(ctx context.Context, id store.SessionID) (store.LiveSession, bool, error) {
		t, found, err := a.store.CheckAPIToken(ctx, id)
		return t.LiveSession, found, err
	}
	return err
}

// Start connects, installs or upgrades the schema, and starts the cleanup
// job, the listening connection and the watch over long requests.
func (a *App) Start() error {
	if a.unexpanded != nil {
		return fmt.Errorf("pg_session: %w (caddy validate does not connect to the database, so it does not need the URL and passes without it)", a.unexpanded)
	}
	if a.unexpandedSecrets != nil {
		return fmt.Errorf("pg_session: %w (caddy validate signs nobody in, so it passes without them)", a.unexpandedSecrets)
	}
	if a.mail.unexpanded != nil {
		return fmt.Errorf("pg_session: %w (caddy validate sends no mail, so it passes without them)", a.mail.unexpanded)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("pg_session: connecting to PostgreSQL at %s: %w", a.target, err)
	}
	var detectErr error
	a.pool.detected.Do(func() { detectErr = a.detectPooler(ctx) })
	if detectErr != nil {
		return detectErr
	}
	if _, done := a.pool.installed.Load(a.Schema); !done {
		if err := a.install(ctx); err != nil {
			return err
		}
		a.pool.installed.Store(a.Schema, true)
	}
	// The ceremony key is each config's: it may come from its secrets_key.
	if err := a.openCeremonies(ctx); err != nil {
		return fmt.Errorf("pg_session: %w", err)
	}

	// The listener logs through the config that started last.
	a.memory.logger.Store(a.logger)
	loopCtx, stop := context.WithCancel(context.Background())
	a.cancel = stop
	a.wg = new(sync.WaitGroup)
	// The cleanup loop is the config's own, as are its interval and
	// retention; while an old and a new config overlap, the round claimed
	// in the database still runs once.
	a.wg.Go(func() { a.cleanupLoop(loopCtx) })
	if a.pool.mode.Pooled() && a.ListenDatabaseURL == "" {
		// LISTEN cannot work through a transaction pooler; memory is then
		// never trusted, and every request is checked in the database.
		a.logger.Warn("database_url goes through a transaction pooler, where LISTEN cannot work: "+
			"set listen_database_url to a direct connection to the same database; until then "+
			"sessions are not served from memory and every request is checked in the database",
			zap.String("database", a.target))
	} else if a.memory.startListening(a.store, a.listenTo, a.target) {
		a.logger.Info("kept the sessions in memory and the listening connection of the previous config",
			zap.Int("sessions", a.memory.sessions()))
	}
	// The watch over requests in progress is the config's own, with its
	// store; the requests are the memory's, so one still running from the
	// old config ends with its session too.
	a.wg.Go(func() { a.inflight.Watch(loopCtx, 250*time.Millisecond, a.lookUpByID) })
	// Last, once the start cannot fail: a provider that cannot be reached
	// is tried again in the background, and the login page says so.
	a.startProviders()
	a.mail.start(a.logger)
	runningApps.started(a)
	return nil
}

// install installs or upgrades the schema, and warns of usernames the
// current rules would not accept.
func (a *App) install(ctx context.Context) error {
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
	return nil
}

// useMemory makes m this config's memory.
func (a *App) useMemory(m *sharedMemory) {
	a.memory, a.cache, a.inflight = m, m.Cache, m.Flights
	a.sessions.Cache, a.tokens.Cache = m.Cache, m.Cache
}

// Stop ends this config's background work and waits for a round in
// progress. The listener goes on: the memory it keeps up to date may be
// the next config's, which started before this one stops.
func (a *App) Stop() error {
	runningApps.stopped(a)
	if a.cancel != nil {
		a.cancel()
		a.wg.Wait()
	}
	return nil
}

// Cleanup releases this config's hold on the shared memory and pool, the
// memory first, as its listener sends pings through the pool; it is safe
// after a partial Provision.
func (a *App) Cleanup() error {
	errs := []error{a.mail.cleanup()} // first: a queue that ends here gets a few seconds to go out
	switch {
	case a.memoryKey != "":
		_, err := memories.Delete(a.memoryKey)
		errs = append(errs, err)
	case a.memory != nil:
		errs = append(errs, a.memory.Destruct())
	}
	a.memoryKey, a.memory = "", nil
	if a.poolKey != "" {
		_, err := pools.Delete(a.poolKey)
		errs = append(errs, err)
		a.poolKey = ""
	}
	errs = append(errs, a.cleanupProviders())
	return errors.Join(errs...)
}

// Store returns the session store the app manages.
func (a *App) Store() *store.Store { return a.store }

// expand replaces the placeholders of a connection string. An unknown or
// empty one is an error naming it, rather than a URL quietly missing its
// host or password; the URL itself is never shown, as it may hold one.
func (a *App) expand(option, value string) (string, error) {
	url, err := caddy.NewReplacer().ReplaceOrErr(value, true, true)
	switch {
	case err != nil && value == defaultDatabaseURL:
		return "", errors.New("database_url is empty: set it in the pg_session global option or set DATABASE_URL")
	case err != nil:
		return "", fmt.Errorf("%s: %w", option, err)
	case url == "":
		return "", fmt.Errorf("%s is empty", option)
	}
	return url, nil
}

// Interface guards
var (
	_ caddy.App             = (*App)(nil)
	_ caddy.Provisioner     = (*App)(nil)
	_ caddy.Validator       = (*App)(nil)
	_ caddy.CleanerUpper    = (*App)(nil)
	_ caddyfile.Unmarshaler = (*App)(nil)
)

// historyRetention is the store's retention for the history_retention
// option: unset is the default, 0 keeps nothing.
func historyRetention(opt *caddy.Duration) time.Duration {
	switch {
	case opt == nil:
		return store.DefaultHistoryRetention
	case *opt <= 0:
		return store.NoHistory
	}
	return time.Duration(*opt)
}
