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

// APITokenPrefix starts every API token, so secret scanners can recognise a
// leaked one and nobody mistakes it for a session cookie.
const APITokenPrefix = "pgs_"

// APITokenLength is the length of an API token: the prefix, then a token of
// the session tokens' shape.
const APITokenLength = len(APITokenPrefix) + TokenLength

// newAPIToken returns a fresh random API token.
func newAPIToken() string {
	return APITokenPrefix + newToken()
}

// IsAPIToken reports whether s has the shape of an API token this package
// issues (the prefix, the exact length, the URL-safe base64 alphabet), so
// a malformed one is turned away without a query.
func IsAPIToken(s string) bool {
	return len(s) == APITokenLength && s[:len(APITokenPrefix)] == APITokenPrefix && ValidToken(s[len(APITokenPrefix):])
}

// HashAPIToken returns the id stored for an API token: the lowercase hex
// SHA-256 of the whole token, the same form as a session's id, so memory
// keys and notifications name tokens as they name sessions.
func HashAPIToken(token string) SessionID {
	return HashToken(token)
}
