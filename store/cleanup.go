package store

import (
	"context"
	"fmt"
	"time"
)

// Cleanup is what one cleanup round removed.
type Cleanup struct {
	Sessions      int64 // expired sessions
	LoginAttempts int64 // failed logins and sign-ups that no longer count
	SignIns       int64 // sign-in history older than its retention
	PendingLogins int64 // logins that waited for a second factor too long
	// UsedChallenges are finished passkey ceremonies whose cookies expired.
	UsedChallenges int64
	// IdentityFlows are sign-ins with a provider whose callback never came.
	IdentityFlows int64
	// IdentityInvitations are admins' permissions to link that expired unused.
	IdentityInvitations int64
	// UserInvitations are invitations to create an account used or
	// expired more than InvitationRetention ago.
	UserInvitations int64
	// AccountTokens are mailed links (reset, verification) that expired unused.
	AccountTokens int64
	// AuditEntries are admin actions older than audit_retention, which the
	// app deletes after the round (CleanupAudit).
	AuditEntries int64
}

// RunCleanup runs one cleanup round, unless another server sharing the
// database started one less than every ago; ran says whether this one did.
// The round is claimed with one UPDATE of the maintenance table, not a
// lock, so nothing stays held through a transaction pooler or after a
// server dies. server names the claimant in the table, for operators.
func (s *Store) RunCleanup(ctx context.Context, server string, every time.Duration) (c Cleanup, ran bool, err error) {
	tag, err := s.pool.Exec(ctx, s.q.claimCleanup, every.Seconds(), server)
	if err != nil {
		return c, false, fmt.Errorf("claiming the cleanup round: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return c, false, nil
	}
	if c.Sessions, err = s.CleanupExpiredSessions(ctx); err != nil {
		return c, true, err
	}
	if c.LoginAttempts, err = s.CleanupLoginAttempts(ctx); err != nil {
		return c, true, err
	}
	if c.PendingLogins, err = s.CleanupPendingLogins(ctx); err != nil {
		return c, true, err
	}
	if c.UsedChallenges, err = s.CleanupUsedChallenges(ctx); err != nil {
		return c, true, err
	}
	if c.IdentityFlows, err = s.CleanupIdentityFlows(ctx); err != nil {
		return c, true, err
	}
	if c.IdentityInvitations, err = s.CleanupIdentityInvitations(ctx); err != nil {
		return c, true, err
	}
	if c.UserInvitations, err = s.CleanupInvitations(ctx); err != nil {
		return c, true, err
	}
	if c.AccountTokens, err = s.CleanupAccountTokens(ctx); err != nil {
		return c, true, err
	}
	c.SignIns, err = s.TrimSignInHistory(ctx)
	return c, true, err
}

// deleteInBatches runs query, a DELETE of at most $1 rows (args are $2 on),
// until it deletes fewer than a batch, and returns how many rows went. Small
// batches keep each transaction short, so cleanup never holds locks a
// request waits on.
func (s *Store) deleteInBatches(ctx context.Context, query, what string, args ...any) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		// A batch once sent runs to its end, so what it deleted is counted:
		// cancelled midway, it may commit with nobody to read how many rows
		// went. ctx ends the loop between batches; batchTimeout bounds a
		// batch on a database that stopped answering.
		batchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
		tag, err := s.pool.Exec(batchCtx, query, append([]any{s.batchSize}, args...)...)
		cancel()
		if err != nil {
			return total, fmt.Errorf("%s: %w", what, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(s.batchSize) {
			return total, nil
		}
	}
}
