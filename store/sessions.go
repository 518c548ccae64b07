package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// MaxUserAgentLength caps what is kept of a User-Agent header; enough to
// recognise a device, too little to fill the table with junk.
const MaxUserAgentLength = 256

// Session is one login of one user.
type Session struct {
	// ID is the hex SHA-256 of the session's token, never the token itself.
	ID         string
	User       User
	ExpiresAt  time.Time
	CreatedAt  time.Time
	LastSeenAt time.Time
	UserAgent  string
	IP         string
}

// NewSession describes a session to create.
type NewSession struct {
	UserID string
	// Lifetime is how long the session lasts from now; it must be positive.
	Lifetime time.Duration
	// UserAgent and IP describe the device, for a user looking at their sessions.
	UserAgent string
	IP        string
}

// CreateSession starts a session and returns its token, which exists only in
// the return value: the database keeps its hash.
func (s *Store) CreateSession(ctx context.Context, ns NewSession) (string, *Session, error) {
	if ns.Lifetime <= 0 {
		return "", nil, errors.New("creating session: lifetime must be positive")
	}
	if !validUUID(ns.UserID) {
		return "", nil, fmt.Errorf("creating session: %w", ErrUserNotFound)
	}
	token := newToken()
	sess, err := scanSession(s.pool.QueryRow(ctx, s.q.createSession, HashToken(token), ns.UserID,
		ns.Lifetime.Seconds(), trimUTF8(ns.UserAgent, MaxUserAgentLength), trimUTF8(ns.IP, 64)))
	if err != nil {
		if pgErrorCode(err) == foreignKeyViolation {
			return "", nil, fmt.Errorf("creating session: %w", ErrUserNotFound)
		}
		return "", nil, fmt.Errorf("creating session: %w", err)
	}
	return token, sess, nil
}

// GetSession returns the live session for token. A token that is malformed,
// unknown or expired gives (nil, nil) without an error, and a malformed one
// costs no query; an error always means the database failed.
func (s *Store) GetSession(ctx context.Context, token string) (*Session, error) {
	if !ValidToken(token) {
		return nil, nil
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, s.q.getSession, HashToken(token)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up session: %w", err)
	}
	return sess, nil
}

// DeleteSession ends the session of token; ending one that does not exist is not an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if !ValidToken(token) {
		return nil
	}
	if _, err := s.pool.Exec(ctx, s.q.deleteSession, HashToken(token)); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of a user and returns how many there were.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) (int64, error) {
	if !validUUID(userID) {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, s.q.deleteUserSessions, userID)
	if err != nil {
		return 0, fmt.Errorf("deleting sessions of user: %w", err)
	}
	return tag.RowsAffected(), nil
}

// GetUserSessions lists a user's live sessions, most recently used first.
func (s *Store) GetUserSessions(ctx context.Context, userID string) ([]Session, error) {
	if !validUUID(userID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, s.q.getUserSessions, userID)
	if err != nil {
		return nil, fmt.Errorf("listing sessions of user: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("listing sessions of user: %w", err)
		}
		out = append(out, *sess)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing sessions of user: %w", err)
	}
	return out, nil
}

// CleanupExpiredSessions deletes expired sessions in batches of the
// configured size, each its own short statement, and returns how many it
// removed. It stops early, returning the count so far, when ctx ends.
func (s *Store) CleanupExpiredSessions(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, s.q.cleanupSessions, s.batchSize)
		if err != nil {
			return total, fmt.Errorf("deleting expired sessions: %w", err)
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

func scanSession(row pgx.Row) (*Session, error) {
	var sess Session
	err := row.Scan(&sess.ID, &sess.ExpiresAt, &sess.CreatedAt, &sess.LastSeenAt, &sess.UserAgent, &sess.IP,
		&sess.User.ID, &sess.User.Username, &sess.User.IsAdmin, &sess.User.CreatedAt, &sess.User.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return &sess, nil
}

// trimUTF8 shortens s to at most n bytes without splitting a character and
// drops invalid UTF-8 and NUL bytes, which PostgreSQL text refuses.
func trimUTF8(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, ""), "\x00", "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
