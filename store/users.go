package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Limits on what users choose. The password maximum bounds the work one
// login can ask of the hasher.
const (
	MaxUsernameLength = 64 // characters
	MinPasswordLength = 8  // characters
	MaxPasswordLength = 1024
)

// User is an account that can log in.
type User struct {
	ID        string // UUID
	Username  string
	IsAdmin   bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// InputError says why a username or password was refused; its message is
// fit to show to the person who typed it.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// ValidateUsername reports why name cannot be a username, or nil.
func ValidateUsername(name string) error {
	if name == "" {
		return &InputError{"username is empty"}
	}
	if !utf8.ValidString(name) {
		return &InputError{"username is not valid UTF-8"}
	}
	if utf8.RuneCountInString(name) > MaxUsernameLength {
		return &InputError{fmt.Sprintf("username is longer than %d characters", MaxUsernameLength)}
	}
	if strings.TrimSpace(name) != name {
		return &InputError{"username starts or ends with a space"}
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return &InputError{"username contains a control character"}
		}
	}
	return nil
}

// ValidatePassword reports why password cannot be set as a password, or nil.
func ValidatePassword(password string) error {
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return &InputError{fmt.Sprintf("password is shorter than %d characters", MinPasswordLength)}
	}
	if len(password) > MaxPasswordLength {
		return &InputError{fmt.Sprintf("password is longer than %d bytes", MaxPasswordLength)}
	}
	return nil
}

// CreateUser adds a user with an argon2id hash of password.
func (s *Store) CreateUser(ctx context.Context, username, password string, isAdmin bool) (*User, error) {
	if err := ValidatePassword(password); err != nil {
		return nil, err
	}
	if err := ValidateUsername(username); err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		return nil, fmt.Errorf("creating user: %w", err)
	}
	return s.CreateUserWithHash(ctx, username, hash, isAdmin)
}

// CreateUserWithHash adds a user whose password hash was made elsewhere,
// argon2id or bcrypt, to import users from htpasswd files or basic_auth.
func (s *Store) CreateUserWithHash(ctx context.Context, username, hash string, isAdmin bool) (*User, error) {
	if err := ValidateUsername(username); err != nil {
		return nil, err
	}
	if err := CheckPasswordHash(hash); err != nil {
		return nil, &InputError{err.Error()}
	}
	u, err := scanUser(s.pool.QueryRow(ctx, s.q.createUser, username, hash, isAdmin))
	if pgErrorCode(err) == uniqueViolation {
		return nil, ErrUserExists
	}
	if err != nil {
		return nil, fmt.Errorf("creating user: %w", err)
	}
	return u, nil
}

// GetUserByName finds a user by name, ignoring case.
func (s *Store) GetUserByName(ctx context.Context, username string) (*User, error) {
	if ValidateUsername(username) != nil {
		return nil, ErrUserNotFound
	}
	u, err := scanUser(s.pool.QueryRow(ctx, s.q.getUserByName, username))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user: %w", err)
	}
	return u, nil
}

// GetUser finds a user by id.
func (s *Store) GetUser(ctx context.Context, id string) (*User, error) {
	if !validUUID(id) {
		return nil, ErrUserNotFound
	}
	u, err := scanUser(s.pool.QueryRow(ctx, s.q.getUserByID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user: %w", err)
	}
	return u, nil
}

// AnyAdmin reports whether some user has is_admin.
func (s *Store) AnyAdmin(ctx context.Context) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, s.q.anyAdmin).Scan(&ok); err != nil {
		return false, fmt.Errorf("looking for an admin: %w", err)
	}
	return ok, nil
}

// ListUsers returns every user, ordered by name.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.pool.Query(ctx, s.q.listUsers)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (User, error) {
		u, err := scanUser(row)
		if err != nil {
			return User{}, err
		}
		return *u, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return users, nil
}

// DeleteUser removes a user; their sessions go with them.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	if ValidateUsername(username) != nil {
		return ErrUserNotFound
	}
	tag, err := s.pool.Exec(ctx, s.q.deleteUser, username)
	if err != nil {
		return fmt.Errorf("deleting user: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrUserNotFound
	}
	return nil
}

// VerifyPassword returns the user when username and password match, and
// ErrInvalidCredentials when they do not. An unknown name costs the same
// hash computation as a wrong password, so timing does not tell them apart.
// A bcrypt or weaker argon2id hash is upgraded after a successful login.
func (s *Store) VerifyPassword(ctx context.Context, username, password string) (*User, error) {
	if len(password) > MaxPasswordLength || ValidateUsername(username) != nil {
		return nil, ErrInvalidCredentials
	}
	var u User
	var hash string
	err := s.pool.QueryRow(ctx, s.q.getUserCredential, username).
		Scan(&u.ID, &u.Username, &u.IsAdmin, &u.CreatedAt, &u.UpdatedAt, &hash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("looking up user: %w", err)
	}
	// An unknown user waits for a turn and hashes like a known one.
	release, slotErr := s.hashSlot(ctx)
	if slotErr != nil {
		return nil, slotErr
	}
	defer release()
	if errors.Is(err, pgx.ErrNoRows) {
		ComparePassword(fakeHash(), password)
		return nil, ErrInvalidCredentials
	}
	ok, rehash, err := ComparePassword(hash, password)
	if err != nil {
		return nil, fmt.Errorf("verifying password of %s: %w", u.Username, err)
	}
	if !ok {
		return nil, ErrInvalidCredentials
	}
	if rehash {
		// Best effort: a failed upgrade leaves a working old hash in place.
		if newHash, err := HashPassword(password); err == nil {
			s.pool.Exec(ctx, s.q.setPasswordHash, u.ID, hash, newHash)
		}
	}
	return &u, nil
}

// ChangePassword sets a user's password and ends their other sessions: every
// session except the one of keepToken, which may be empty to end them all.
// It returns how many sessions it ended.
func (s *Store) ChangePassword(ctx context.Context, userID, newPassword, keepToken string) (int64, error) {
	if err := ValidatePassword(newPassword); err != nil {
		return 0, err
	}
	if !validUUID(userID) {
		return 0, ErrUserNotFound
	}
	hash, err := s.hashPassword(ctx, newPassword)
	if err != nil {
		return 0, fmt.Errorf("changing password: %w", err)
	}
	var ended int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, s.q.setPassword, userID, hash)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrUserNotFound
		}
		tag, err = tx.Exec(ctx, s.q.deleteOtherSessions, userID, HashToken(keepToken))
		ended = tag.RowsAffected()
		return err
	})
	if errors.Is(err, ErrUserNotFound) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("changing password: %w", err)
	}
	return ended, nil
}

// hashPassword hashes a new password when its turn comes.
func (s *Store) hashPassword(ctx context.Context, password string) (string, error) {
	release, err := s.hashSlot(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return HashPassword(password)
}

func scanUser(row pgx.Row) (*User, error) {
	var u User
	if err := row.Scan(&u.ID, &u.Username, &u.IsAdmin, &u.CreatedAt, &u.UpdatedAt); err != nil {
		return nil, err
	}
	return &u, nil
}

// PostgreSQL error codes the store turns into its own errors.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

func pgErrorCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// validUUID reports whether id is a UUID in its canonical text form, so a
// malformed id is "not found" instead of a database error.
func validUUID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
