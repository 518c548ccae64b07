package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// Names that look like an existing account's name in another script, or
// with a character that looks like another, are refused with the name they
// look like; names of other scripts that look like no account are fine.
func TestNamesThatLookLikeAnAccountsNameAreRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	newUser(t, s, "alice")
	newUser(t, s, "Ольга")
	newUser(t, s, "mike")

	for name, looksLike := range map[string]string{
		"\u0430lice":      "alice", // Cyrillic а
		"al\u0131ce":      "alice", // dotless ı
		"aIice":           "alice", // capital I for l
		"a1ice":           "alice",
		"\u0410LICE":      "alice", // Cyrillic А, then upper case
		"ali\u0441e":      "alice", // Cyrillic с
		"\u0251lice":      "alice", // Latin alpha
		"O\u043b\u044cгa": "Ольга", // Latin O and a among Cyrillic
		"rnike":           "mike",
	} {
		_, err := s.CreateUser(ctx, name, "correct horse battery", false)
		var lookalike *store.LookalikeError
		if assert.ErrorAs(t, err, &lookalike, "%q", name) {
			assert.Equal(t, looksLike, lookalike.Existing, "%q", name)
			assert.ErrorIs(t, err, store.ErrUserExists, "a look-alike is a taken name to callers that do not ask")
		}
		existing, err := s.LookalikeOf(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, looksLike, existing, "%q", name)
	}
	for _, fine := range []string{"bob", "Ada Lovelace", "李小龙", "josé", "Ольгa Петрова", "alicia", "Мария"} {
		_, err := s.CreateUser(ctx, fine, "correct horse battery", false)
		assert.NoError(t, err, "%q", fine)
	}
	existing, err := s.LookalikeOf(ctx, "nobody")
	require.NoError(t, err)
	assert.Empty(t, existing)
	assert.Equal(t, 10, count(t, s, `SELECT count(*) FROM pgsession.users`))
}

// Sign-ups of look-alike names at the same moment: exactly one of each
// group gets the name, whichever comes first.
func TestLookalikeNamesCreatedAtOnceGiveOneAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	const rounds = 10
	for round := range rounds {
		base := fmt.Sprintf("mallory%d", round)
		n := base[len("mallory"):]
		names := []string{base, "m\u0430llory" + n, "maIlory" + n, "mall\u043ery" + n, "MALLORY" + n,
			"ma1lory" + n, "m\u0430ll\u043ery" + n, "Mallory" + n}
		var wg sync.WaitGroup
		errs := make([]error, len(names))
		for i, name := range names {
			wg.Go(func() { _, errs[i] = s.CreateUser(ctx, name, "correct horse battery", false) })
		}
		wg.Wait()
		created := 0
		for i, err := range errs {
			if err == nil {
				created++
				continue
			}
			assert.ErrorIs(t, err, store.ErrUserExists, "round %d, %q", round, names[i])
		}
		assert.Equal(t, 1, created, "round %d: %v", round, errs)
	}
	assert.Equal(t, rounds, count(t, s, `SELECT count(*) FROM pgsession.users`))
}

// Accounts from before the check keep working: two that look alike both
// log in, the later one is reported, and no third look-alike can join
// them, not even after the older one is deleted.
func TestLookalikeAccountsFromBeforeTheCheckKeepWorking(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	hash, err := store.HashPassword("correct horse battery")
	require.NoError(t, err)
	// As migration 0011 finds them: keyed rows without skeletons.
	for _, name := range []string{"alice", "\u0430lice", "bob", "b\u043eb"} {
		exec(t, s, `INSERT INTO pgsession.users (username, username_key, password_hash) VALUES ($1, $2, $3)`,
			name, must(store.PrepareUsername(name)).Key, hash)
	}
	_, err = s.Migrate(ctx)
	require.NoError(t, err)
	_, err = s.Migrate(ctx)
	require.NoError(t, err, "a second start finds nothing to do")

	for _, name := range []string{"alice", "\u0430lice", "bob", "b\u043eb"} {
		u, err := s.VerifyPassword(ctx, name, "correct horse battery")
		if assert.NoError(t, err, "%q logs in", name) {
			assert.Equal(t, name, u.Username)
		}
	}
	legacy, err := s.LegacyUsernames(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"\u0430lice", "b\u043eb"}, legacy, "the later look-alikes are reported at start")

	_, err = s.CreateUser(ctx, "al\u0131ce", "correct horse battery", false)
	assert.ErrorIs(t, err, store.ErrUserExists)
	require.NoError(t, s.DeleteUser(ctx, "alice"))
	_, err = s.CreateUser(ctx, "alice", "correct horse battery", false)
	var lookalike *store.LookalikeError
	if assert.ErrorAs(t, err, &lookalike, "the remaining look-alike still keeps the name") {
		assert.Equal(t, "\u0430lice", lookalike.Existing)
	}
	_, err = s.CreateUser(ctx, "carol", "correct horse battery", false)
	assert.NoError(t, err)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
