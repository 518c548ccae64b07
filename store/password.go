package store

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2Params are the cost of an argon2id hash, as its PHC string records it.
type Argon2Params struct {
	// Memory is in KiB.
	Memory uint32
	// Passes is argon2's time cost.
	Passes uint32
}

// DefaultArgon2 is OWASP's first recommended argon2id setting (19 MiB, two
// passes, one lane): it costs an attacker as much as the 46 MiB setting
// while using less than half the memory per login on the server.
var DefaultArgon2 = Argon2Params{Memory: 19 * 1024, Passes: 2}

// argon2Lanes and argon2KeyLength are fixed: one lane keeps a login on one
// core, and 32 bytes is the key length every argon2id guide uses.
const (
	argon2Lanes      = 1
	argon2KeyLength  = 32
	argon2SaltLength = 16
)

func (p Argon2Params) validate() error {
	if p.Memory < 8 || p.Memory > maxArgon2Memory || p.Passes < 1 || p.Passes > maxArgon2Time {
		return fmt.Errorf("argon2id cost out of range: memory %d KiB (8 to %d), passes %d (1 to %d)",
			p.Memory, maxArgon2Memory, p.Passes, maxArgon2Time)
	}
	return nil
}

// hash returns an argon2id hash of password at cost p, in PHC string format.
func (p Argon2Params) hash(password string) (string, error) {
	salt := make([]byte, argon2SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generating salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Passes, p.Memory, argon2Lanes, argon2KeyLength)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Passes, argon2Lanes,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// HashPassword returns an argon2id hash of password at DefaultArgon2's cost,
// in PHC string format, e.g. $argon2id$v=19$m=19456,t=2,p=1$salt$key.
func HashPassword(password string) (string, error) {
	return DefaultArgon2.hash(password)
}

// ComparePassword reports whether password matches hash, an argon2id PHC
// string or a bcrypt hash (as Caddy's basic_auth and htpasswd files hold).
// needsRehash is true when the hash is bcrypt or costs less than
// DefaultArgon2, so a caller can upgrade it after a successful login.
func ComparePassword(hash, password string) (ok, needsRehash bool, err error) {
	return comparePassword(hash, password, DefaultArgon2)
}

// comparePassword is ComparePassword against the cost target.
func comparePassword(hash, password string, target Argon2Params) (ok, needsRehash bool, err error) {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		p, salt, key, err := decodeArgon2id(hash)
		if err != nil {
			return false, false, err
		}
		got := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, p.keyLen)
		ok := subtle.ConstantTimeCompare(got, key) == 1
		return ok, p.memory < target.Memory || p.time < target.Passes, nil
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		switch {
		case err == nil:
			return true, true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword), errors.Is(err, bcrypt.ErrPasswordTooLong):
			return false, false, nil
		default:
			return false, false, fmt.Errorf("reading bcrypt hash: %w", err)
		}
	default:
		return false, false, errors.New("password hash is neither argon2id nor bcrypt")
	}
}

// argon2Params are the parameters a stored argon2id hash was made with.
type argon2Params struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	keyLen  uint32
}

// CheckPasswordHash reports whether hash is a password hash this package can verify.
func CheckPasswordHash(hash string) error {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		_, _, _, err := decodeArgon2id(hash)
		return err
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("reading bcrypt hash: %w", err)
		}
		return nil
	default:
		return errors.New("password hash is neither argon2id nor bcrypt")
	}
}

// Limits on stored argon2id settings: a hash is data from the database, and
// an absurd one must not be able to take the server's memory.
const (
	maxArgon2Memory = 1 << 20 // KiB: 1 GiB
	maxArgon2Time   = 64
)

func decodeArgon2id(hash string) (p argon2Params, salt, key []byte, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("malformed argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, fmt.Errorf("unsupported argon2id version %q", parts[2])
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil {
		return p, nil, nil, fmt.Errorf("malformed argon2id parameters %q", parts[3])
	}
	if p.memory == 0 || p.memory > maxArgon2Memory || p.time == 0 || p.time > maxArgon2Time || threads == 0 || threads > 255 {
		return p, nil, nil, fmt.Errorf("argon2id parameters %q out of range", parts[3])
	}
	p.threads = uint8(threads)
	if salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil {
		return p, nil, nil, fmt.Errorf("decoding argon2id salt: %w", err)
	}
	if key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(key) < 16 {
		return p, nil, nil, errors.New("malformed argon2id key")
	}
	p.keyLen = uint32(len(key))
	return p, salt, key, nil
}
