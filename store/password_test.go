package store

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

func TestHashPasswordIsArgon2idPHC(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$"), h)
	h2, err := HashPassword("correct horse battery")
	require.NoError(t, err)
	assert.NotEqual(t, h, h2, "each hash has its own salt")

	ok, rehash, err := ComparePassword(h, "correct horse battery")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.False(t, rehash)
	ok, _, err = ComparePassword(h, "correct horse battery!")
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestComparePasswordAcceptsCaddyAndBcryptHashes(t *testing.T) {
	// Made by `caddy hash-password --plaintext antitiming --algorithm argon2id`.
	caddyArgon := "$argon2id$v=19$m=47104,t=1,p=1$P2nzckEdTZ3bxCiBCkRTyA$xQL3Z32eo5jKl7u5tcIsnEKObYiyNZQQf5/4sAau6Pg"
	ok, rehash, err := ComparePassword(caddyArgon, "antitiming")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.True(t, rehash, "one pass is weaker than today's setting")

	b, err := bcrypt.GenerateFromPassword([]byte("antitiming"), bcrypt.MinCost)
	require.NoError(t, err)
	ok, rehash, err = ComparePassword(string(b), "antitiming")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.True(t, rehash)
	ok, _, err = ComparePassword(string(b), "antitiming2")
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestComparePasswordRefusesMalformedHashes(t *testing.T) {
	for _, h := range []string{
		"",
		"plain",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
		"$2b$04$tooshort",
	} {
		ok, _, err := ComparePassword(h, "x")
		assert.False(t, ok, h)
		assert.Error(t, err, h)
		assert.Error(t, CheckPasswordHash(h), h)
	}
}

func TestTokenShape(t *testing.T) {
	tok := newToken()
	assert.Len(t, tok, 43)
	assert.True(t, ValidToken(tok))
	assert.Len(t, HashToken(tok), 64)
	assert.Equal(t, strings.ToLower(string(HashToken(tok))), string(HashToken(tok)))
}

func TestTrimUTF8(t *testing.T) {
	assert.Equal(t, "abc", trimUTF8("abc", 10))
	assert.Equal(t, "ab", trimUTF8("abc", 2))
	assert.Equal(t, "a", trimUTF8("aé", 2), "a character is never split")
	assert.Equal(t, "ab", trimUTF8("a\x00b\xff", 10))
}
