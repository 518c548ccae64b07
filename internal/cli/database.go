package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/migrations"
	"github.com/pgsession/caddy-pgsession/store"
)

// storeOptions are the options every command opens its store with, but for
// the schema, which --schema gives. The zero value is the store's defaults;
// the tests lower the argon2id cost, which would otherwise be most of their
// run time.
var storeOptions store.Options

// run wraps a command's function so its error never carries the database
// password.
func (c *state) run(f func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		if err == nil || c.secret == "" {
			return err
		}
		msg := err.Error()
		for _, s := range []string{c.secret, url.QueryEscape(c.secret), url.PathEscape(c.secret)} {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
		if msg == err.Error() {
			return err
		}
		return errors.New(msg)
	}
}

// withStore opens the database the flags name, installs or upgrades the
// schema quietly, and runs f on the store with a context bounding f's
// database work. The pool is closed when f returns.
func (c *state) withStore(cmd *cobra.Command, f func(ctx context.Context, s *store.Store) error) error {
	s, pool, err := c.open(cmd)
	if err != nil {
		return err
	}
	defer pool.Close()
	ctx, cancel := c.context(cmd)
	defer cancel()
	return f(ctx, s)
}

// withUser is withStore for the commands on one user: f gets the user named
// name, regardless of case, and does not run when there is none.
func (c *state) withUser(cmd *cobra.Command, name string, f func(ctx context.Context, s *store.Store, u *store.User) error) error {
	return c.withStore(cmd, func(ctx context.Context, s *store.Store) error {
		u, err := s.GetUserByName(ctx, name)
		if errors.Is(err, store.ErrUserNotFound) {
			return noUser(name)
		}
		if err != nil {
			return err
		}
		return f(ctx, s, u)
	})
}

// withPassword gets the new password from pw, then runs f with a context of
// its own, so the time someone takes to type it is not counted against the
// database work that follows.
func (c *state) withPassword(cmd *cobra.Command, pw *passwordSource, f func(ctx context.Context, password string) error) error {
	password, err := pw.get()
	if err != nil {
		return err
	}
	ctx, cancel := c.context(cmd)
	defer cancel()
	return f(ctx, password)
}

// open connects to the database and installs or upgrades the schema, noting
// in c.applied how many migrations that took. The caller closes the pool.
func (c *state) open(cmd *cobra.Command) (*store.Store, *pgxpool.Pool, error) {
	dbURL := c.databaseURL
	if dbURL == "" {
		dbURL = os.Getenv(databaseURLEnv)
	}
	if dbURL == "" {
		return nil, nil, errors.New("no database given: pass --database-url or set " + databaseURLEnv)
	}
	if err := migrations.ValidateSchema(c.schema); err != nil {
		return nil, nil, err
	}
	// Statements run unnamed, so the command works through a transaction
	// pooler too; it runs too few of them for preparing to pay.
	cfg, _, err := store.PoolConfig(dbURL, "caddy pg-session")
	if err != nil {
		return nil, nil, err
	}
	c.secret = cfg.ConnConfig.Password
	cfg.MaxConns = 2
	target := store.Target(cfg.ConnConfig)

	ctx, cancel := c.context(cmd)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the database at %s: %w", target, err)
	}
	opts := storeOptions
	opts.Schema = c.schema
	s, err := store.New(pool, opts)
	if err == nil {
		err = pool.Ping(ctx)
		if err != nil {
			err = fmt.Errorf("connecting to the database at %s: %w", target, err)
		}
	}
	if err == nil {
		if c.applied, err = s.Migrate(ctx); err != nil {
			err = fmt.Errorf("installing the schema %q: %w", c.schema, err)
		}
	}
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	c.store, c.stderr = s, cmd.ErrOrStderr()
	return s, pool, nil
}

// context bounds one stretch of database work.
func (c *state) context(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, timeout)
}

// migrate reports what opening the database did to the schema, since every
// command installs or upgrades it on the way in.
func (c *state) migrate(cmd *cobra.Command, _ []string) error {
	return c.withStore(cmd, func(context.Context, *store.Store) error {
		if c.applied == 0 {
			fmt.Fprintf(cmd.OutOrStdout(), "applied 0 migrations to schema %q: it is up to date\n", c.schema)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "applied %s to schema %q\n", count(c.applied, "migration"), c.schema)
		}
		return nil
	})
}
