package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// tokenBytes is the token's entropy: 256 bits, beyond any guessing.
const tokenBytes = 32

// TokenLength is the length of an encoded token as it travels in a cookie:
// unpadded base64 of tokenBytes.
const TokenLength = (tokenBytes*8 + 5) / 6

// newToken returns a fresh random token, URL-safe base64 without padding.
func newToken() string {
	b := make([]byte, tokenBytes)
	// crypto/rand.Read never fails on supported platforms (it panics instead).
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidToken reports whether token has the shape of one this package
// issues, so garbage cookies are turned away without a query.
func ValidToken(token string) bool {
	if len(token) != TokenLength {
		return false
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	// Strict decoding also refuses non-zero padding bits, so each token has
	// exactly one spelling. The buffer is on the stack: this runs on every
	// request with a cookie.
	var buf [tokenBytes + 3]byte
	_, err := base64.RawURLEncoding.Strict().AppendDecode(buf[:0], []byte(token))
	return err == nil
}

// HashToken returns the session id stored for token: the lowercase hex
// SHA-256 of the cookie value. The database holds only this, so a leaked
// table cannot be replayed as cookies.
func HashToken(token string) SessionID {
	sum := sha256.Sum256([]byte(token))
	return SessionID(hex.EncodeToString(sum[:]))
}
