package store

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Throttle is how many failed logins are tolerated within a window, per
// account and per client address, before further attempts are refused, and
// how many registrations one address may make in the same window.
type Throttle struct {
	PerAccount int
	PerIP      int
	// RegistrationsPerIP caps the accounts one address may create within
	// Window; they also count toward PerIP. 0 means no limit of its own.
	RegistrationsPerIP int
	Window             time.Duration
}

// Attempt is a password check reserved against a Throttle before it is
// made, so that parallel guesses cannot all pass one count.
type Attempt struct {
	// ID names the recorded attempt; 0 when the attempt was refused.
	ID int64
	// Account and IP are the attempts that counted before this one: the
	// account's failed logins (for a registration, the address's
	// registrations) and everything from the client's address.
	Account, IP int
	// RetryAfter is how long until the oldest counted attempt leaves the
	// window, when a limit is reached; zero otherwise.
	RetryAfter time.Duration
}

// Throttled reports whether a limit was reached, so the password must not be checked.
func (a Attempt) Throttled() bool { return a.ID == 0 }

// throttleKey is how failed logins are counted per account: names that are
// one account share one count ("ＢＯＢ", "Bob", "bob"), and a name that
// cannot be an account is still counted, lowercased.
func throttleKey(username string) string {
	if key := lookupKey(username); key != "" {
		return key
	}
	return strings.ToLower(trimUTF8(username, 4*MaxUsernameLength))
}

// throttleAddress is how attempts are counted per client: an IPv6 client by
// its /64, since one subscriber usually holds a whole /64 and could rotate
// through its addresses to escape a per-address count; an IPv4 client (also
// when IPv4-mapped) by its address.
func throttleAddress(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return trimUTF8(ip, 64)
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	return netip.PrefixFrom(addr, 64).Masked().String()
}

// ReserveLoginAttempt reserves a password check for username from ip: below
// the limits it records the attempt at once, as a failure, and returns it;
// at a limit it returns a throttled Attempt and records nothing. The count
// and the record are one atomic step per account and per address, so N
// parallel guesses against a limit of 5 get exactly 5 password checks.
// After a successful check, ClearLoginFailures forgives it.
func (s *Store) ReserveLoginAttempt(ctx context.Context, username, ip string, t Throttle) (Attempt, error) {
	return s.reserve(ctx, "login", throttleKey(username), ip, t.PerAccount, t)
}

// ReserveRegistration reserves the creation of an account from ip, counted
// toward t.RegistrationsPerIP and t.PerIP. It is never forgiven: a
// registration costs a password hash whether or not it succeeds.
func (s *Store) ReserveRegistration(ctx context.Context, ip string, t Throttle) (Attempt, error) {
	return s.reserve(ctx, "register", "", ip, t.RegistrationsPerIP, t)
}

func (s *Store) reserve(ctx context.Context, kind, key, ip string, accountLimit int, t Throttle) (Attempt, error) {
	var a Attempt
	var id *int64
	var retry float64
	err := s.pool.QueryRow(ctx, s.q.reserveAttempt, kind, key, throttleAddress(ip), t.Window.Seconds(),
		accountLimit, t.PerIP).Scan(&id, &a.Account, &a.IP, &retry)
	if err != nil {
		return Attempt{}, fmt.Errorf("reserving a password check: %w", err)
	}
	if id != nil {
		a.ID = *id
	} else {
		a.RetryAfter = max(time.Duration(retry*float64(time.Second)), time.Second)
	}
	return a, nil
}

// ReleaseAttempt forgets a reserved attempt whose password was never
// checked (the hashers were busy, the client went away), so it does not
// count against the user.
func (s *Store) ReleaseAttempt(ctx context.Context, a Attempt) error {
	if a.ID == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, s.q.releaseAttempt, a.ID); err != nil {
		return fmt.Errorf("releasing a reserved password check: %w", err)
	}
	return nil
}

// ClearLoginFailures forgets an account's failed logins after it logs in,
// the reservation of that login included, so a few typos do not count
// against its owner later. Failures recorded against other accounts from
// the same address still count toward the address's limit: credential
// stuffing spreads over many accounts.
func (s *Store) ClearLoginFailures(ctx context.Context, username string) error {
	if _, err := s.pool.Exec(ctx, s.q.clearLoginFailures, throttleKey(username)); err != nil {
		return fmt.Errorf("clearing failed logins: %w", err)
	}
	return nil
}

// CleanupLoginAttempts deletes failed-login rows that no longer count, in
// batches, and returns how many it removed.
func (s *Store) CleanupLoginAttempts(ctx context.Context) (int64, error) {
	return s.deleteInBatches(ctx, s.q.cleanupLoginAttempts, "deleting old login attempts")
}
