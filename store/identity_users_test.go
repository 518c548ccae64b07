package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// What a provider calls someone becomes a name in the username profile,
// with room left for a number.
func TestUsernameFromHint(t *testing.T) {
	t.Parallel()
	for hint, want := range map[string]string{
		"alice":                 "alice",
		"Ada Lovelace":          "Ada Lovelace",
		"  Ada   Lovelace  ":    "Ada Lovelace",
		"alice@example.com":     "alice@example.com",
		"ＢＯＢ":                   "ＢＯＢ", // kept as given; PrepareUsername width-maps it when stored
		"bob\u200bby":           "bobby",
		"party 🎉 time":          "party time",
		"🎉":                     "user",
		"":                      "user",
		"\xff\xfe":              "user",
		"Ольга":                 "Ольга",
		"a\tb":                  "a b",
		strings.Repeat("x", 80): strings.Repeat("x", 57),
	} {
		got := store.UsernameFromHint(hint)
		assert.Equal(t, want, got, "%q", hint)
		assert.NoError(t, store.ValidateUsername(got), "%q", hint)
		assert.LessOrEqual(t, utf8.RuneCountInString(got), store.MaxUsernameLength-7, "%q: room for a suffix", hint)
	}
}

// A first sign-in creates a user without a password, linked and in the
// groups of the claim that exist, named after the hint, or the hint and a
// number when an account has the name or one like it.
func TestCreateUserFromIdentity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	must(s.CreateGroup(ctx, "ops"))
	newUser(t, s, "alice")

	ada, err := s.CreateUserFromIdentity(ctx, "Ada Lovelace", google("sub-1", "ada@example.com"), []string{"ops", "nope"})
	require.NoError(t, err)
	assert.Equal(t, "Ada Lovelace", ada.Username)
	assert.False(t, ada.HasPassword)
	assert.False(t, ada.IsAdmin)
	assert.Equal(t, []string{"ops"}, ada.Groups, "the groups of the claim that exist")
	assert.Equal(t, ada.ID, must(s.UserByIdentity(ctx, google("sub-1", ""))).ID)
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM pgsession.user_groups WHERE provider = 'google'`),
		"the provider's membership, which its claim can end")

	// In turn: each numbered name looks like the others of its number.
	for _, tc := range []struct{ hint, want string }{
		{"ada lovelace", "ada lovelace2"}, // the same name, another case
		{"alice", "alice2"},
		{"аlice", "аlice3"}, // Cyrillic а: аlice2 would look like alice2
		{"aIice", "aIice4"}, // capital I for l
		{"alice", "alice5"},
	} {
		u, err := s.CreateUserFromIdentity(ctx, tc.hint, google("sub-"+tc.want, ""), nil)
		require.NoError(t, err, tc.hint)
		assert.Equal(t, tc.want, u.Username, tc.hint)
	}

	users := count(t, s, `SELECT count(*) FROM pgsession.users`)
	_, err = s.CreateUserFromIdentity(ctx, "mallory", google("sub-1", ""), nil)
	assert.ErrorIs(t, err, store.ErrIdentityTaken)
	assert.Equal(t, users, count(t, s, `SELECT count(*) FROM pgsession.users`), "no user without the identity")
	_, err = s.GetUserByName(ctx, "mallory")
	assert.ErrorIs(t, err, store.ErrUserNotFound)

	var input *store.InputError
	_, err = s.CreateUserFromIdentity(ctx, "zed", google("", ""), nil)
	assert.ErrorAs(t, err, &input)
}

// When the numbered names are taken too, a random number still finds one:
// whoever took alice2 to alice9 does not keep the next alice out.
func TestCreateUserFromIdentityPastTheNumberedNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	newUser(t, s, "alice")
	for n := 2; n <= 9; n++ {
		newUser(t, s, "alice"+string(rune('0'+n)))
	}
	u, err := s.CreateUserFromIdentity(ctx, "alice", google("sub-1", ""), nil)
	require.NoError(t, err)
	assert.Regexp(t, `^alice[1-9][0-9]{5}$`, u.Username)
}

// First sign-ins with one name at once get a name each, and two with one
// identity at once make one user.
func TestRacingFirstSignIns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	var wg sync.WaitGroup
	names := make([]string, 6)
	errs := make([]error, 6)
	for i := range names {
		wg.Go(func() {
			subject := "sub-" + string(rune('a'+i/2)) // two sign-ins a subject
			u, err := s.CreateUserFromIdentity(ctx, "bob", google(subject, ""), nil)
			if err == nil {
				names[i] = u.Username
			}
			errs[i] = err
		})
	}
	wg.Wait()
	created := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			assert.ErrorIs(t, err, store.ErrIdentityTaken, "sign-in %d", i)
			continue
		}
		assert.False(t, created[names[i]], "%s given twice", names[i])
		created[names[i]] = true
	}
	assert.Len(t, created, 3, "one user a subject: %v", names)
	assert.Equal(t, 3, count(t, s, `SELECT count(*) FROM pgsession.users`))
}
