package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// A connection made before the pool knew it talks to PostgreSQL directly
// runs its statements unnamed, which makes PostgreSQL parse and plan each
// one; it is replaced when next released once the mode is known, so no
// connection stays that way for its whole life.
func TestConnectionsMadeBeforeTheModeWasKnownAreReplaced(t *testing.T) {
	t.Parallel()
	cfg, mode, err := store.PoolConfig(pgtest.NewDatabase(t), "test")
	require.NoError(t, err)
	cfg.MinConns, cfg.MaxConns = 0, 2
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	ctx := context.Background()

	early, err := pool.Acquire(ctx)
	require.NoError(t, err)
	assert.Equal(t, pgx.QueryExecModeCacheDescribe, early.Conn().Config().DefaultQueryExecMode)
	earlyPID := early.Conn().PgConn().PID()
	mode.SetPooled(false) // what the start-up probe decides while the connection is in use
	early.Release()

	for range 3 {
		c, err := pool.Acquire(ctx)
		require.NoError(t, err)
		assert.Equal(t, pgx.QueryExecModeCacheStatement, c.Conn().Config().DefaultQueryExecMode)
		assert.NotEqual(t, earlyPID, c.Conn().PgConn().PID(), "the unnamed connection came back")
		c.Release()
	}
}

// Through a transaction pooler, the connections stay as they were made.
func TestConnectionsOfAPoolerAreKept(t *testing.T) {
	t.Parallel()
	cfg, mode, err := store.PoolConfig(pgtest.NewDatabase(t), "test")
	require.NoError(t, err)
	cfg.MinConns, cfg.MaxConns = 0, 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	ctx := context.Background()

	c, err := pool.Acquire(ctx)
	require.NoError(t, err)
	pid := c.Conn().PgConn().PID()
	mode.SetPooled(true)
	c.Release()
	c, err = pool.Acquire(ctx)
	require.NoError(t, err)
	defer c.Release()
	assert.Equal(t, pid, c.Conn().PgConn().PID())
}
