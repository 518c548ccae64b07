// Package store keeps caddy-pgsession's users and sessions in PostgreSQL.
//
// It knows nothing of HTTP or Caddy: the plugin, the CLI and the tests all
// use the same few operations on a pgx pool.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgsession/caddy-pgsession/migrations"
)

// DefaultCleanupBatchSize is how many expired sessions one DELETE removes;
// small batches keep each transaction short so cleanup never holds locks
// that a login or a request would wait on.
const DefaultCleanupBatchSize = 1000

// Errors callers tell apart with errors.Is. A missing session is not among
// them: GetSession returns a nil session and a nil error for it, so any
// error from GetSession means the database could not answer.
var (
	ErrUserNotFound       = errors.New("user not found")
	ErrUserExists         = errors.New("a user with that name already exists")
	ErrInvalidCredentials = errors.New("invalid username or password")
)

// Options configure a Store; the zero value works.
type Options struct {
	// Schema is the PostgreSQL schema holding the tables. Default: migrations.DefaultSchema.
	Schema string
	// CleanupBatchSize is how many expired rows each cleanup DELETE removes. Default: DefaultCleanupBatchSize.
	CleanupBatchSize int
}

// Store is the PostgreSQL session and user store. It is safe for concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	schema    string
	batchSize int
	q         queries
}

// New returns a Store using pool. It does not touch the database; call
// Migrate to install the schema.
func New(pool *pgxpool.Pool, opts Options) (*Store, error) {
	if pool == nil {
		return nil, errors.New("store needs a connection pool")
	}
	if opts.Schema == "" {
		opts.Schema = migrations.DefaultSchema
	}
	if err := migrations.ValidateSchema(opts.Schema); err != nil {
		return nil, err
	}
	if opts.CleanupBatchSize <= 0 {
		opts.CleanupBatchSize = DefaultCleanupBatchSize
	}
	return &Store{
		pool:      pool,
		schema:    opts.Schema,
		batchSize: opts.CleanupBatchSize,
		q:         newQueries(opts.Schema),
	}, nil
}

// Schema returns the PostgreSQL schema the store uses.
func (s *Store) Schema() string { return s.schema }

// Pool returns the connection pool the store uses.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Migrate installs or upgrades the schema and returns how many migrations it applied.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	return migrations.Migrate(ctx, s.pool, s.schema)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pinging database: %w", err)
	}
	return nil
}

// queries holds every SQL statement with the schema spelled out, built once
// so the request path does no string work and pgx can cache the statements.
type queries struct {
	createSession, getSession, deleteSession, cleanupSessions   string
	deleteUserSessions, getUserSessions, deleteOtherSessions    string
	createUser, getUserByName, getUserByID, listUsers           string
	deleteUser, setPassword, setPasswordHash, getUserCredential string
}

func newQueries(schema string) queries {
	r := strings.NewReplacer(
		"{users}", pgx.Identifier{schema, "users"}.Sanitize(),
		"{sessions}", pgx.Identifier{schema, "sessions"}.Sanitize(),
	)
	return queries{
		// createSession returns the row joined with its user in the same round trip.
		createSession: r.Replace(`WITH s AS (
				INSERT INTO {sessions} (id, user_id, expires_at, user_agent, ip)
				VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5)
				RETURNING *)
			SELECT s.id, s.expires_at, s.created_at, s.last_seen_at, s.user_agent, s.ip,
				u.id::text, u.username, u.is_admin, u.created_at, u.updated_at
			FROM s JOIN {users} u ON u.id = s.user_id`),
		getSession: r.Replace(`SELECT s.id, s.expires_at, s.created_at, s.last_seen_at, s.user_agent, s.ip,
				u.id::text, u.username, u.is_admin, u.created_at, u.updated_at
			FROM {sessions} s JOIN {users} u ON u.id = s.user_id
			WHERE s.id = $1 AND s.expires_at > now()`),
		deleteSession: r.Replace(`DELETE FROM {sessions} WHERE id = $1`),
		cleanupSessions: r.Replace(`DELETE FROM {sessions} WHERE id IN (
				SELECT id FROM {sessions} WHERE expires_at <= now()
				ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)`),
		deleteUserSessions: r.Replace(`DELETE FROM {sessions} WHERE user_id = $1`),
		getUserSessions: r.Replace(`SELECT s.id, s.expires_at, s.created_at, s.last_seen_at, s.user_agent, s.ip,
				u.id::text, u.username, u.is_admin, u.created_at, u.updated_at
			FROM {sessions} s JOIN {users} u ON u.id = s.user_id
			WHERE s.user_id = $1 AND s.expires_at > now()
			ORDER BY s.last_seen_at DESC, s.created_at DESC`),
		deleteOtherSessions: r.Replace(`DELETE FROM {sessions} WHERE user_id = $1 AND id <> $2`),
		createUser: r.Replace(`INSERT INTO {users} (username, password_hash, is_admin) VALUES ($1, $2, $3)
			RETURNING id::text, username, is_admin, created_at, updated_at`),
		getUserByName: r.Replace(`SELECT id::text, username, is_admin, created_at, updated_at
			FROM {users} WHERE lower(username) = lower($1)`),
		getUserByID: r.Replace(`SELECT id::text, username, is_admin, created_at, updated_at
			FROM {users} WHERE id = $1`),
		listUsers: r.Replace(`SELECT id::text, username, is_admin, created_at, updated_at
			FROM {users} ORDER BY lower(username)`),
		deleteUser:  r.Replace(`DELETE FROM {users} WHERE lower(username) = lower($1)`),
		setPassword: r.Replace(`UPDATE {users} SET password_hash = $2, updated_at = now() WHERE id = $1`),
		// setPasswordHash upgrades an old hash only if nobody changed it meanwhile.
		setPasswordHash: r.Replace(`UPDATE {users} SET password_hash = $3 WHERE id = $1 AND password_hash = $2`),
		getUserCredential: r.Replace(`SELECT id::text, username, is_admin, created_at, updated_at, password_hash
			FROM {users} WHERE lower(username) = lower($1)`),
	}
}
