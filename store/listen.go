package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// Invalidation says which sessions a server may have kept in memory stopped
// being valid, as the database's triggers announce it (see the migration
// 0007_notify_changes.sql).
type Invalidation struct {
	// All means anything may have changed: too many rows at once, a
	// TRUNCATE, or a (re)connection after which missed notifications cannot
	// be known.
	All bool
	// Sessions ended or were shortened.
	Sessions []SessionID
	// Users were deleted or changed: all their sessions.
	Users []UserID
}

// ParseInvalidation reads a notification payload; ok is false for one that
// is not an invalidation (a ping, or something unknown).
func ParseInvalidation(payload string) (inv Invalidation, ok bool) {
	switch {
	case payload == "*":
		return Invalidation{All: true}, true
	case strings.HasPrefix(payload, "s:"):
		return Invalidation{Sessions: splitIDs[SessionID](payload[2:])}, true
	case strings.HasPrefix(payload, "u:"):
		return Invalidation{Users: splitIDs[UserID](payload[2:])}, true
	}
	return Invalidation{}, false
}

func splitIDs[ID ~string](list string) []ID {
	parts := strings.Split(list, ",")
	ids := make([]ID, len(parts))
	for i, p := range parts {
		ids[i] = ID(p)
	}
	return ids
}

// ErrNoEcho means the listening connection works, but a notification it
// sends never comes back to it: it goes through a transaction pooler (such
// as PgBouncer), which runs LISTEN on one server connection and the NOTIFY
// of others on different ones.
var ErrNoEcho = errors.New("notifications sent on the listening connection never come back to it: " +
	"it goes through a transaction pooler such as PgBouncer, where LISTEN cannot work")

// errStalled means a connection that used to echo its pings stopped.
var errStalled = errors.New("the listening connection stopped answering")

// Listener keeps a connection LISTENing to the store's channel and passes
// on what the triggers announce. To know it is caught up, it has a ping
// notification sent through the store's pool every PingInterval:
// notifications arrive in commit order, so once a ping sent at t is back,
// every change committed before t has been passed to Invalidate. A ping
// that never arrives means the listening connection goes through a
// transaction pooler, which delivers nothing to a client between its
// transactions.
type Listener struct {
	// Store sends the pings, through its pool as every other change is sent.
	Store *Store
	// ConnString is a direct connection to the database: not through a
	// transaction pooler.
	ConnString string
	// PingInterval is how often a ping is sent. Default: 500ms.
	PingInterval time.Duration
	// Invalidate receives each announcement, and Invalidation{All: true}
	// each time the connection is made, for what was missed before.
	Invalidate func(Invalidation)
	// Confirmed is called with the time a ping was sent once it is back.
	Confirmed func(sent time.Time)
	// Lost is called when the connection fails, or its pings stop coming
	// back (ErrNoEcho when they never did); Run then connects again.
	Lost func(error)
}

// Run listens until ctx ends, connecting again after each failure.
func (l *Listener) Run(ctx context.Context) {
	interval := l.PingInterval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		confirmed, err := l.listen(ctx, interval)
		if ctx.Err() != nil {
			return
		}
		l.Lost(err)
		if confirmed {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// listen runs one connection until it fails; confirmed says whether a ping
// came back on it.
func (l *Listener) listen(ctx context.Context, interval time.Duration) (confirmed bool, err error) {
	cfg, err := pgx.ParseConfig(l.ConnString)
	if err != nil {
		return false, ErrBadConnString
	}
	// A wait that times out leaves the connection usable (pgx's default
	// would send a cancel request on a new connection each time).
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "caddy-pgsession listen"
	}
	connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(connectCtx, cfg)
	cancel()
	if err != nil {
		return false, fmt.Errorf("connecting to listen at %s: %w", Target(cfg), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.Store.schema}.Sanitize()); err != nil {
		return false, fmt.Errorf("listening at %s: %w", Target(cfg), err)
	}
	l.Invalidate(Invalidation{All: true})

	var nonce [8]byte
	rand.Read(nonce[:])
	ping := "ping:" + hex.EncodeToString(nonce[:]) + ":"
	// A ping has this long to come back; a stall beyond it ends the connection.
	echoTimeout := max(4*interval, 2*time.Second)
	for seq := 1; ; seq++ {
		sent := time.Now()
		payload := ping + fmt.Sprint(seq)
		pingCtx, cancel := context.WithTimeout(ctx, echoTimeout)
		_, err := l.Store.pool.Exec(pingCtx, l.Store.q.notify, l.Store.schema, payload)
		cancel()
		if err != nil {
			return confirmed, fmt.Errorf("sending a ping to the listening connection: %w", err)
		}
		echoed := false
		for next := sent.Add(interval); !echoed || time.Now().Before(next); {
			deadline := next
			if !echoed {
				deadline = sent.Add(echoTimeout)
			}
			n, err := l.wait(ctx, conn, deadline)
			switch {
			case ctx.Err() != nil:
				return confirmed, ctx.Err()
			case errors.Is(err, context.DeadlineExceeded) && echoed:
				continue // time for the next ping
			case errors.Is(err, context.DeadlineExceeded) && confirmed:
				return confirmed, errStalled
			case errors.Is(err, context.DeadlineExceeded):
				return confirmed, ErrNoEcho
			case err != nil:
				return confirmed, fmt.Errorf("listening: %w", err)
			}
			if n.Payload == payload {
				echoed, confirmed = true, true
				l.Confirmed(sent)
				continue
			}
			if inv, ok := ParseInvalidation(n.Payload); ok {
				l.Invalidate(inv)
			}
		}
	}
}

// wait waits for one notification until deadline.
func (l *Listener) wait(ctx context.Context, conn *pgx.Conn, deadline time.Time) (*pgconn.Notification, error) {
	waitCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	n, err := conn.WaitForNotification(waitCtx)
	if err != nil && waitCtx.Err() != nil && ctx.Err() == nil {
		return nil, context.DeadlineExceeded
	}
	return n, err
}
