package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Throttle is how many failed logins are tolerated within a window, per
// account and per client IP, before further attempts are refused.
type Throttle struct {
	PerAccount int
	PerIP      int
	Window     time.Duration
}

// LoginFailures says how a login stands against a Throttle.
type LoginFailures struct {
	Account, IP int
	// RetryAfter is how long until the oldest counted failure leaves the
	// window, when a limit is reached; zero otherwise.
	RetryAfter time.Duration
}

// Throttled reports whether either limit is reached.
func (f LoginFailures) Throttled() bool { return f.RetryAfter > 0 }

// usernameKey is how failures are counted per account: names are unique
// regardless of case, so "Alice" and "alice" share one count.
func usernameKey(username string) string {
	return strings.ToLower(trimUTF8(username, 4*MaxUsernameLength))
}

// CheckLoginFailures counts recent failed logins for username and ip.
func (s *Store) CheckLoginFailures(ctx context.Context, username, ip string, t Throttle) (LoginFailures, error) {
	var f LoginFailures
	var oldestAccount, oldestIP *time.Time
	var now time.Time
	err := s.pool.QueryRow(ctx, s.q.countLoginFailures, usernameKey(username), trimUTF8(ip, 64), t.Window.Seconds()).
		Scan(&f.Account, &f.IP, &oldestAccount, &oldestIP, &now)
	if err != nil {
		return f, fmt.Errorf("counting failed logins: %w", err)
	}
	// The wait ends when enough failures have aged out of the window; the
	// oldest one leaving is a fair, cheap estimate.
	wait := func(oldest *time.Time) time.Duration {
		if oldest == nil {
			return t.Window
		}
		return max(oldest.Add(t.Window).Sub(now), time.Second)
	}
	if t.PerAccount > 0 && f.Account >= t.PerAccount {
		f.RetryAfter = wait(oldestAccount)
	}
	if t.PerIP > 0 && f.IP >= t.PerIP {
		f.RetryAfter = max(f.RetryAfter, wait(oldestIP))
	}
	return f, nil
}

// RecordLoginFailure counts one failed login for username and ip.
func (s *Store) RecordLoginFailure(ctx context.Context, username, ip string, t Throttle) error {
	if _, err := s.pool.Exec(ctx, s.q.recordLoginFailure, usernameKey(username), trimUTF8(ip, 64), t.Window.Seconds()); err != nil {
		return fmt.Errorf("recording failed login: %w", err)
	}
	return nil
}

// ClearLoginFailures forgets an account's failed logins after it logs in,
// so a few typos do not count against its owner later. The per-IP count
// stays: credential stuffing spreads over many accounts.
func (s *Store) ClearLoginFailures(ctx context.Context, username string) error {
	if _, err := s.pool.Exec(ctx, s.q.clearLoginFailures, usernameKey(username)); err != nil {
		return fmt.Errorf("clearing failed logins: %w", err)
	}
	return nil
}

// CleanupLoginAttempts deletes failed-login rows that no longer count, in
// batches, and returns how many it removed.
func (s *Store) CleanupLoginAttempts(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, s.q.cleanupLoginAttempts, s.batchSize)
		if err != nil {
			return total, fmt.Errorf("deleting old login attempts: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(s.batchSize) {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}
