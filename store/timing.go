package store

import (
	"context"
	"strings"
	"sync"
	"time"
)

// A failed password check must not tell an attacker anything by its timing:
// neither that the user does not exist (the check then runs against a fake
// argon2id hash) nor that the user's hash is an imported bcrypt one, which
// at low cost is many times faster than argon2id. So every failed check is
// padded, by sleeping, to the slowest kind of hash checked lately. Kinds are
// told apart by their parameters (algorithm, memory, passes, cost), and each
// kind's time is a moving average, so one check delayed by a busy machine
// does not slow every later failure.

// checkTimingMemory is how long a kind of hash keeps setting the pace after
// it was last checked.
const checkTimingMemory = 10 * time.Minute

// checkTiming tracks how long each kind of password hash takes to check.
type checkTiming struct {
	mu    sync.Mutex
	kinds map[string]*kindTiming
}

type kindTiming struct {
	average  time.Duration
	lastSeen time.Time
}

// hashKind is the part of a hash that decides how long checking it takes:
// everything before the salt.
func hashKind(hash string) string {
	if strings.HasPrefix(hash, "$2") && len(hash) >= 7 {
		return hash[:7] // $2a$10$
	}
	if i := strings.LastIndexByte(hash, '$'); i > 0 {
		if j := strings.LastIndexByte(hash[:i], '$'); j > 0 {
			return hash[:j] // $argon2id$v=19$m=19456,t=2,p=1
		}
	}
	return hash
}

// observe records that checking a hash of kind took d.
func (t *checkTiming) observe(kind string, d time.Duration, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kinds == nil {
		t.kinds = make(map[string]*kindTiming)
	}
	k := t.kinds[kind]
	if k == nil {
		// Kinds come from the users table, so there are a handful; a flood
		// of made-up ones is impossible, but old ones are dropped anyway.
		for name, old := range t.kinds {
			if now.Sub(old.lastSeen) > checkTimingMemory {
				delete(t.kinds, name)
			}
		}
		t.kinds[kind] = &kindTiming{average: d, lastSeen: now}
		return
	}
	k.average += (d - k.average) / 4
	k.lastSeen = now
}

// floor is how long a failed check must last: the slowest kind's average
// among those checked within checkTimingMemory.
func (t *checkTiming) floor(now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var slowest time.Duration
	for _, k := range t.kinds {
		if now.Sub(k.lastSeen) <= checkTimingMemory {
			slowest = max(slowest, k.average)
		}
	}
	return slowest
}

// comparePassword checks password against hash when a hashing slot is free,
// and pads a failure to the floor. The first check also times the fake
// hash, so the floor is right from the start, before any unknown user was
// tried.
func (s *Store) comparePassword(ctx context.Context, hash, password string) (ok, rehash bool, err error) {
	release, err := s.hashSlot(ctx)
	if err != nil {
		return false, false, err
	}
	s.calibrate.Do(func() {
		fake := s.fakeHash()
		start := time.Now()
		comparePassword(fake, "calibration", s.argon2)
		s.timing.observe(hashKind(fake), time.Since(start), time.Now())
	})
	start := time.Now()
	ok, rehash, err = comparePassword(hash, password, s.argon2)
	took := time.Since(start)
	release()
	s.timing.observe(hashKind(hash), took, time.Now())
	if ok && err == nil {
		return ok, rehash, nil
	}
	if wait := s.timing.floor(time.Now()) - took; wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	return ok, rehash, err
}
