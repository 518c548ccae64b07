package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrBadConnString is returned for a connection string pgx cannot parse.
// pgx's own message may quote the string, password included, so it is not
// passed on.
var ErrBadConnString = errors.New("the database URL cannot be parsed: it should look like " +
	"postgres://user:password@host:5432/database, with special characters in the password percent-encoded")

// StatementMode is how a pool's connections run statements. Named prepared
// statements (pgx's default, QueryExecModeCacheStatement) let PostgreSQL
// parse and plan each statement once per connection, which more than halves
// what a lookup costs the server; but a transaction pooler such as PgBouncer
// hands a client's server connection to other clients between transactions,
// and their names collide ("prepared statement already exists"). Through a
// pooler, statements are described once and run unnamed
// (QueryExecModeCacheDescribe).
type StatementMode struct {
	pooled   atomic.Bool
	explicit bool // the connection string names a mode, which wins
	// unnamed holds the connections made while statements ran unnamed,
	// and unnamedCount how many, so a release checks the map only while
	// one is left.
	unnamed      sync.Map // *pgx.Conn → struct{}
	unnamedCount atomic.Int64
	decided      atomic.Bool // SetPooled was called
}

// Pooled reports whether statements run unnamed, for a transaction pooler.
func (m *StatementMode) Pooled() bool { return m.pooled.Load() }

// SetPooled decides the mode of the connections made from now on.
func (m *StatementMode) SetPooled(pooled bool) {
	m.pooled.Store(pooled)
	m.decided.Store(true)
}

// Explicit reports whether the connection string chose the mode itself.
func (m *StatementMode) Explicit() bool { return m.explicit }

// PoolConfig parses a connection string for a pool the store can use
// directly or through a transaction pooler: its connections run statements
// as the returned StatementMode says when they are made, unnamed until
// SetPooled(false) (the safe choice before DetectPooler has run), unless the
// string names a default_query_exec_mode. applicationName is what
// pg_stat_activity shows, unless the string names one.
func PoolConfig(connString, applicationName string) (*pgxpool.Config, *StatementMode, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, nil, ErrBadConnString
	}
	mode := &StatementMode{explicit: strings.Contains(connString, "default_query_exec_mode")}
	mode.pooled.Store(true)
	if !mode.explicit {
		cfg.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
			if mode.Pooled() {
				cc.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
			} else {
				cc.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
			}
			return nil
		}
		// A connection made unnamed before the mode was known would make
		// PostgreSQL parse and plan each of its statements for as long as
		// it lives, so once the mode is direct it is closed when next
		// released, between statements, and the pool makes a new one.
		cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
			// Config copies, but a connection is made rarely.
			if c.Config().DefaultQueryExecMode == pgx.QueryExecModeCacheDescribe && !(mode.decided.Load() && mode.Pooled()) {
				mode.unnamed.Store(c, struct{}{})
				mode.unnamedCount.Add(1)
			}
			return nil
		}
		cfg.AfterRelease = func(c *pgx.Conn) bool {
			if mode.unnamedCount.Load() == 0 || mode.Pooled() {
				return true
			}
			if _, ok := mode.unnamed.LoadAndDelete(c); ok {
				mode.unnamedCount.Add(-1)
				return false
			}
			return true
		}
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok && applicationName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = applicationName
	}
	return cfg, mode, nil
}

// Target names the servers and database of a connection config as
// host:port/database, for messages: never the password. A multi-host URL
// (failover with target_session_attrs) names every host, in its order, as
// host:port,host:port/database: which one a connection reaches is known only
// once it is made (see Store.ConnectedTo).
func Target(cfg *pgx.ConnConfig) string {
	hosts := []string{net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
	for _, f := range cfg.Fallbacks {
		// pgx lists a host twice when it may be reached with or without TLS.
		if h := net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port))); !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return strings.Join(hosts, ",") + "/" + cfg.Database
}

// DetectPooler reports whether connString leads through a transaction
// pooler. It LISTENs on one connection and NOTIFYs from another: directly,
// or through a pooler in session mode, the notification arrives at once;
// through a transaction pooler, the listening client holds no server
// connection between its transactions and nothing arrives within wait.
func DetectPooler(ctx context.Context, connString string, wait time.Duration) (bool, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return false, ErrBadConnString
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	listener, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connecting to %s: %w", Target(cfg), err)
	}
	defer listener.Close(context.Background())
	sender, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connecting to %s: %w", Target(cfg), err)
	}
	defer sender.Close(context.Background())

	var nonce [8]byte
	rand.Read(nonce[:])
	channel := "pgsession_probe_" + hex.EncodeToString(nonce[:])
	if _, err := listener.Exec(ctx, "LISTEN "+channel); err != nil {
		return false, fmt.Errorf("probing %s: %w", Target(cfg), err)
	}
	if _, err := sender.Exec(ctx, "NOTIFY "+channel); err != nil {
		return false, fmt.Errorf("probing %s: %w", Target(cfg), err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if _, err := listener.WaitForNotification(waitCtx); err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return true, nil
	}
	return false, nil
}

// QueryTimer is a pgx query tracer (set it as ConnConfig.Tracer) that
// reports how long each statement took, under the name of the store's
// statement: a small fixed set, never the SQL text, so it can label a
// metric. Statements the store does not name (migrations, pings,
// transactions' begin and commit) are "other". The time counts from when
// the statement is sent until its rows are read, not the wait for a
// connection from the pool.
type QueryTimer struct {
	observe func(statement string, took time.Duration)
}

// NewQueryTimer returns a tracer that calls observe after each statement.
func NewQueryTimer(observe func(statement string, took time.Duration)) *QueryTimer {
	return &QueryTimer{observe: observe}
}

type queryStartKey struct{}

type queryStart struct {
	sql string
	at  time.Time
}

// TraceQueryStart notes the statement and when it began.
func (t *QueryTimer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{sql: data.SQL, at: time.Now()})
}

// TraceQueryEnd reports the statement's time.
func (t *QueryTimer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if start, ok := ctx.Value(queryStartKey{}).(queryStart); ok {
		t.observe(StatementName(start.sql), time.Since(start.at))
	}
}

// statementNames maps the SQL text of every statement a Store was built
// with, for any schema, to the statement's name; learnStatementNames fills it.
var statementNames sync.Map

// StatementName is the name of the store's statement sql (get_session,
// create_session, …), or "other".
func StatementName(sql string) string {
	if name, ok := statementNames.Load(sql); ok {
		return name.(string)
	}
	return "other"
}

// learnStatementNames names each statement of q as namedStatements does.
func learnStatementNames(q queries) {
	for sql, name := range namedStatements(q) {
		statementNames.LoadOrStore(sql, name)
	}
}

// namedStatements yields the SQL text of each statement of q with its name:
// its field's name in snake case (getSession is get_session), so a
// statement added to queries is named without a list to keep up to date.
func namedStatements(q queries) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		v := reflect.ValueOf(q)
		for i := range v.NumField() {
			if f := v.Field(i); f.Kind() == reflect.String && f.String() != "" {
				if !yield(f.String(), snakeCase(v.Type().Field(i).Name)) {
					return
				}
			}
		}
	}
}

// snakeCase spells a Go name as words joined by _, an initialism as one
// word, as a person would write it: getTOTP is get_totp, signInByID is
// sign_in_by_id, acceptTOTPStep is accept_totp_step.
func snakeCase(name string) string {
	runes := []rune(name)
	var b strings.Builder
	for i, r := range runes {
		if unicode.IsUpper(r) && i > 0 {
			prev := runes[i-1]
			// A capital starts a word after a lower-case letter or a digit,
			// and, within an initialism, where a lower-case letter follows:
			// the P of TOTPStep begins nothing, its S begins Step.
			if !unicode.IsUpper(prev) || i+1 < len(runes) && unicode.IsLower(runes[i+1]) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// Interface guards
var _ pgx.QueryTracer = (*QueryTimer)(nil)
