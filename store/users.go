package store

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
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

// UserID names a user: a UUID in its canonical text form.
type UserID string

// User is an account that can log in.
type User struct {
	ID        UserID    `db:"id"`
	Username  string    `db:"username"`
	IsAdmin   bool      `db:"is_admin"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
	// CredentialVersion counts the times the password was set; a session
	// counts only while it matches the one it was created under.
	CredentialVersion int64 `db:"credential_version"`
	// HasPassword is false for a user created by an identity provider's
	// first sign-in, who has none until they set one: no password matches.
	HasPassword bool `db:"has_password"`
	// Groups are the names of the groups the user is in, sorted, read with
	// the user.
	Groups []string `db:"groups"`
	// Email is the user's address, normalised (NormalizeEmail), "" for
	// none; EmailVerified says whether its owner showed it is theirs (a
	// link used, or an admin set it).
	Email         string `db:"email"`
	EmailVerified bool   `db:"email_verified"`
}

// userWithHash is a user as a password check reads them.
type userWithHash struct {
	User
	PasswordHash string `db:"password_hash"`
}

// InputError says why a username or password was refused; its message is
// fit to show to the person who typed it.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

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

// CreateUser adds a user with an argon2id hash of password. The name is
// stored in its prepared form (see PrepareUsername): a name with the key of
// an existing one is ErrUserExists, one that looks like an existing one in
// another script a *LookalikeError (which is also ErrUserExists).
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
	name, err := PrepareUsername(username)
	if err != nil {
		return nil, err
	}
	if err := CheckPasswordHash(hash); err != nil {
		return nil, &InputError{err.Error()}
	}
	return s.createUserRow(ctx, name, hash, isAdmin)
}

// GetUserByName finds a user by name as PrepareUsername compares names:
// "ＢＯＢ", "BOB" and "bob" find the same user. A name no user has is
// ErrUserNotFound.
func (s *Store) GetUserByName(ctx context.Context, username string) (*User, error) {
	if !utf8.ValidString(username) || len(username) > 4*MaxUsernameLength {
		return nil, ErrUserNotFound
	}
	u, err := collectUser(s.pool.Query(ctx, s.q.getUserByName, lookupKey(username), username))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user: %w", err)
	}
	return u, nil
}

// GetUser finds a user by id; an id no user has is ErrUserNotFound.
func (s *Store) GetUser(ctx context.Context, id UserID) (*User, error) {
	if !validUUID(string(id)) {
		return nil, ErrUserNotFound
	}
	u, err := collectUser(s.pool.Query(ctx, s.q.getUserByID, string(id)))
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
	return queryAll[User](ctx, s, "listing users", s.q.listUsers)
}

// DeleteUser removes a user; their sessions go with them, and a login of
// theirs still in flight cannot create one afterwards. A name no user has
// is ErrUserNotFound.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	if !utf8.ValidString(username) || len(username) > 4*MaxUsernameLength {
		return ErrUserNotFound
	}
	tag, err := s.pool.Exec(ctx, s.q.deleteUser, lookupKey(username), username)
	if err != nil {
		return fmt.Errorf("deleting user: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrUserNotFound
	}
	return nil
}

// SetAdmin grants or removes a user's admin rights. Every session reads the
// flag at lookup, so the change holds from the next request on. An id no
// user has is ErrUserNotFound.
func (s *Store) SetAdmin(ctx context.Context, userID UserID, isAdmin bool) error {
	if !validUUID(string(userID)) {
		return ErrUserNotFound
	}
	tag, err := s.pool.Exec(ctx, s.q.setAdmin, string(userID), isAdmin)
	if err != nil {
		return fmt.Errorf("setting admin rights: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrUserNotFound
	}
	return nil
}

// VerifyPassword returns the user when username and password match, and
// ErrInvalidCredentials when they do not (ErrUnknownUser, which is one, when
// no account has the name). Every failure takes as long as
// the slowest password check seen lately, whatever the user's hash and
// whether the user exists, so timing tells neither which names exist nor
// how their passwords are hashed. A user without a password (HasPassword)
// is ErrInvalidCredentials, checked as an unknown name is, so that timing
// tells no account without a password from one with. A bcrypt or weaker
// argon2id hash is upgraded after a successful login.
func (s *Store) VerifyPassword(ctx context.Context, username, password string) (*User, error) {
	var u User
	var hash string
	found := len(password) <= MaxPasswordLength && utf8.ValidString(username) && len(username) <= 4*MaxUsernameLength
	if found {
		rows, err := s.pool.Query(ctx, s.q.getUserCredential, lookupKey(username), username)
		if err == nil {
			var uh userWithHash
			uh, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userWithHash])
			u, hash = uh.User, uh.PasswordHash
		}
		if errors.Is(err, pgx.ErrNoRows) {
			found = false
		} else if err != nil {
			return nil, fmt.Errorf("looking up user: %w", err)
		}
	}
	noPassword := found && hash == ""
	if !found || noPassword {
		// An unknown user, or one without a password, waits for a turn and
		// hashes like a known one.
		hash, password = s.fakeHash(), trimUTF8(password, MaxPasswordLength)
	}
	ok, rehash, err := s.comparePassword(ctx, hash, password)
	if err != nil {
		return nil, fmt.Errorf("verifying password of %s: %w", u.Username, err)
	}
	if !found {
		return nil, ErrUnknownUser
	}
	if !ok || noPassword {
		// The fake hash's own password must not open an account without one.
		return nil, ErrInvalidCredentials
	}
	if rehash {
		// Best effort: a failed upgrade leaves a working old hash in place.
		if newHash, err := s.hashPassword(ctx, password); err == nil {
			s.pool.Exec(ctx, s.q.setPasswordHash, string(u.ID), hash, newHash)
		}
	}
	return &u, nil
}

// ChangePassword sets a user's password and ends their other sessions: every
// session except the one of keepToken, which may be empty to end them all.
// It returns how many sessions it ended. Sessions created by logins that
// checked the old password but had not finished yet end as well: they carry
// the old credential version. An id no user has is ErrUserNotFound.
func (s *Store) ChangePassword(ctx context.Context, userID UserID, newPassword, keepToken string) (int64, error) {
	if err := ValidatePassword(newPassword); err != nil {
		return 0, err
	}
	if !validUUID(string(userID)) {
		return 0, ErrUserNotFound
	}
	hash, err := s.hashPassword(ctx, newPassword)
	if err != nil {
		return 0, fmt.Errorf("changing password: %w", err)
	}
	var ended int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var version int64
		if err := tx.QueryRow(ctx, s.q.setPassword, string(userID), hash).Scan(&version); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrUserNotFound
			}
			return err
		}
		keep := HashToken(keepToken)
		tag, err := tx.Exec(ctx, s.q.deleteOtherSessions, string(userID), string(keep))
		if err != nil {
			return err
		}
		ended = tag.RowsAffected()
		if keepToken != "" {
			_, err = tx.Exec(ctx, s.q.keepSession, string(userID), string(keep), version)
		}
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

// keyUsernames gives rows from before usernames had keys their key, so
// look-alike names resolve to one account. A name that does not fit the
// profile, or whose key an older account already has, keeps no key and is
// still found by lower(username): LegacyUsernames lists those.
func (s *Store) keyUsernames(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, s.q.unkeyedUsers)
	if err != nil {
		return fmt.Errorf("reading usernames without a key: %w", err)
	}
	type row struct {
		ID       string `db:"id"`
		Username string `db:"username"`
	}
	legacy, err := pgx.CollectRows(rows, pgx.RowToStructByName[row])
	if err != nil {
		return fmt.Errorf("reading usernames without a key: %w", err)
	}
	for _, r := range legacy {
		name, err := PrepareUsername(r.Username)
		if err != nil {
			continue
		}
		_, err = s.pool.Exec(ctx, s.q.setUsernameKey, r.ID, name.Key)
		if err != nil && pgErrorCode(err) != pgerrcode.UniqueViolation {
			return fmt.Errorf("setting username key: %w", err)
		}
	}
	return nil
}

// LegacyUsernames lists the names created before names were checked that
// fit no key (outside the username profile, or with an older account's
// key) or look like an older account's name in another script. Those
// without a key can still log in by their exact name (ignoring case),
// unless an account with their key exists; the look-alikes log in as ever.
func (s *Store) LegacyUsernames(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, s.q.legacyUsers)
	if err != nil {
		return nil, fmt.Errorf("reading usernames without a key: %w", err)
	}
	type row struct {
		ID       string `db:"id"`
		Username string `db:"username"`
	}
	legacy, err := pgx.CollectRows(rows, pgx.RowToStructByName[row])
	if err != nil {
		return nil, fmt.Errorf("reading usernames without a key: %w", err)
	}
	names := make([]string, len(legacy))
	for i, r := range legacy {
		names[i] = r.Username
	}
	return names, nil
}

// hashPassword hashes a new password when its turn comes.
func (s *Store) hashPassword(ctx context.Context, password string) (string, error) {
	release, err := s.hashSlot(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return s.argon2.hash(password)
}

// collectUser reads the one user a query returns, by column name;
// pgx.ErrNoRows when there is none.
func collectUser(rows pgx.Rows, err error) (*User, error) {
	if err != nil {
		return nil, err
	}
	u, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[User])
	if err != nil {
		return nil, err
	}
	return &u, nil
}

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
