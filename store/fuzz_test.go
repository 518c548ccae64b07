package store_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/pgsession/caddy-pgsession/store"
)

// FuzzValidToken checks the cookie-token parser that turns garbage away
// before any query: it never panics, it accepts exactly the one spelling
// of a 32-byte token in unpadded URL-safe base64, and HashToken is always
// the 64 lowercase hex digits of the token's SHA-256.
//
// The checked-in corpus is in testdata/fuzz/FuzzValidToken; run it longer
// with make fuzz.
func FuzzValidToken(f *testing.F) {
	for _, seed := range []string{
		"",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",     // 32 zero bytes
		strings.Repeat("_", 43),                           // the last character's padding bits set
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE",     // padding bits clear: valid
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",     // non-zero padding bits
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",     // padded: not the raw alphabet
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",     // standard, not URL-safe, alphabet
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",    // 44 characters
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",      // 42 characters
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",    // a line break where the last character goes
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\u00e9", // 43 bytes, but a two-byte rune
	} {
		f.Add(seed)
	}
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	f.Fuzz(func(t *testing.T, token string) {
		valid := store.ValidToken(token)

		// What a valid token is, decided independently of ValidToken.
		shape := len(token) == 43
		for i := 0; shape && i < len(token); i++ {
			if strings.IndexByte(alphabet, token[i]) < 0 {
				shape = false
			}
		}
		var decoded []byte
		if shape {
			var err error
			decoded, err = base64.RawURLEncoding.Strict().DecodeString(token)
			shape = err == nil && len(decoded) == 32 &&
				base64.RawURLEncoding.EncodeToString(decoded) == token
		}
		if valid && !shape {
			t.Fatalf("ValidToken accepted %q, which is not the URL-safe base64 of 32 bytes in its one spelling", token)
		}
		if !valid && shape {
			t.Fatalf("ValidToken refused %q, the URL-safe base64 of 32 bytes", token)
		}

		// Any 32 bytes make a token ValidToken accepts.
		if len(token) == 32 {
			if enc := base64.RawURLEncoding.EncodeToString([]byte(token)); !store.ValidToken(enc) {
				t.Fatalf("ValidToken refused %q, the encoding of 32 bytes", enc)
			}
		}

		hash := store.HashToken(token)
		if len(hash) != 64 {
			t.Fatalf("HashToken(%q) = %q: %d characters, want 64", token, hash, len(hash))
		}
		for i := 0; i < len(hash); i++ {
			if strings.IndexByte("0123456789abcdef", hash[i]) < 0 {
				t.Fatalf("HashToken(%q) = %q: not lowercase hex", token, hash)
			}
		}
		sum := sha256.Sum256([]byte(token))
		if want := hex.EncodeToString(sum[:]); string(hash) != want {
			t.Fatalf("HashToken(%q) = %q, want the hex SHA-256 %q", token, hash, want)
		}
	})
}
