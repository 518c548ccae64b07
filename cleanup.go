package pgsession

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// The cleanup job: expired sessions and the rest of what ages out, deleted
// by one server of the cluster at a time.

// cleanupLoop deletes expired sessions now and then every CleanupInterval,
// in the manner of the tls app's storage cleaner, and counts the sessions
// for the gauges after each round and every countInterval.
func (a *App) cleanupLoop(ctx context.Context) {
	ticker := time.NewTicker(time.Duration(a.CleanupInterval))
	defer ticker.Stop()
	counter := time.NewTicker(cmp.Or(a.countEvery, countInterval))
	defer counter.Stop()
	a.cleanupRound(ctx)
	a.countSessions(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			a.cleanupRound(ctx)
		case <-counter.C:
		}
		a.countSessions(ctx)
	}
}

// cleanupRound runs one round of the cleanup, and logs what it deleted
// however it ended, so the log adds up to the cleanup_deleted_total metric.
func (a *App) cleanupRound(ctx context.Context) {
	defer func() {
		if err := recover(); err != nil {
			a.logger.Error("panic in session cleanup", zap.Any("error", err), zap.Stack("stack"))
		}
	}()
	interval := time.Duration(a.CleanupInterval)
	ctx, cancel := context.WithTimeout(ctx, interval)
	defer cancel()
	start := time.Now()
	// A round counts as taken for most of an interval, so the server that
	// ran it runs the next one, and another takes over if it is gone.
	c, ran, err := a.store.RunCleanup(ctx, a.server, interval*9/10)
	if ran && err == nil {
		// The audit trail's retention is the app's option, not the store's,
		// so the server that ran the round applies it here.
		c.AuditEntries, err = a.store.CleanupAudit(ctx, auditRetention(a.AuditRetention))
	}
	a.metrics.cleaned(c)
	deleted := []zap.Field{zap.Int64("deleted", c.Sessions),
		zap.Int64("login_attempts_deleted", c.LoginAttempts),
		zap.Int64("sign_ins_deleted", c.SignIns),
		zap.Int64("pending_logins_deleted", c.PendingLogins),
		zap.Int64("used_challenges_deleted", c.UsedChallenges),
		zap.Int64("audit_entries_deleted", c.AuditEntries),
		zap.Duration("took", time.Since(start).Round(time.Millisecond))}
	switch {
	case err != nil && ctx.Err() == nil:
		a.logger.Error("session cleanup", append(deleted, zap.String("database", a.target), zap.Error(err))...)
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		// A backlog larger than one interval deletes (a first start on a
		// big table, a long outage): the next round goes on from here.
		a.logger.Warn("session cleanup ran out of time: the next round goes on where this one stopped",
			append(deleted, zap.Duration("cleanup_interval", interval))...)
	case err != nil:
		a.logger.Info("session cleanup stopped with the server", deleted...)
	case !ran:
		a.logger.Debug("session cleanup: another server ran this round")
	default:
		a.logger.Info("deleted expired sessions", deleted...)
	}
}

// defaultAuditRetention keeps a year of admin actions: long enough to look
// back at who changed an account after a yearly review or a late-found
// breach, short enough that the table does not grow without end.
const defaultAuditRetention = 365 * 24 * time.Hour

// auditRetention is the audit_retention option: unset is the default, and 0
// keeps the trail forever. Unlike history_retention, no value stops the
// recording: a setting that turned the audit off would hide what an admin
// did, so the way to keep less is a shorter retention.
func auditRetention(opt *caddy.Duration) time.Duration {
	switch {
	case opt == nil:
		return defaultAuditRetention
	case *opt <= 0:
		return 0
	}
	return time.Duration(*opt)
}
