package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SessionCounts are the sessions table at a glance.
type SessionCounts struct {
	// Active is how many sessions are live: what the gate lets through.
	Active int64 `db:"active"`
	// Expired is how many sessions have ended (by their lifetime or idle
	// timeout) but are still in the table, for the next cleanup to delete.
	Expired int64 `db:"expired"`
	// CreatedToday is how many sessions still in the table were created
	// since midnight UTC; one ended by a logout or a revocation is gone and
	// not counted.
	CreatedToday int64 `db:"created_today"`
}

// UserSessions is how many live sessions one user has.
type UserSessions struct {
	Username string `db:"username" json:"username"`
	Sessions int64  `db:"sessions" json:"sessions"`
}

// CountSessions counts the sessions in one pass over the table. A session
// made under a password changed since, which only a login racing the change
// leaves behind, is neither active nor expired.
func (s *Store) CountSessions(ctx context.Context) (SessionCounts, error) {
	rows, err := s.pool.Query(ctx, s.q.countSessions)
	if err != nil {
		return SessionCounts{}, fmt.Errorf("counting sessions: %w", err)
	}
	c, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[SessionCounts])
	if err != nil {
		return SessionCounts{}, fmt.Errorf("counting sessions: %w", err)
	}
	return c, nil
}

// TopUsers lists the n users with the most live sessions, most first, then
// by name.
func (s *Store) TopUsers(ctx context.Context, n int) ([]UserSessions, error) {
	rows, err := s.pool.Query(ctx, s.q.topUsers, n)
	if err != nil {
		return nil, fmt.Errorf("listing users by sessions: %w", err)
	}
	top, err := pgx.CollectRows(rows, pgx.RowToStructByName[UserSessions])
	if err != nil {
		return nil, fmt.Errorf("listing users by sessions: %w", err)
	}
	return top, nil
}
