package store_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest/migrated"
	"github.com/pgsession/caddy-pgsession/store"
)

func google(subject, email string) store.Identity {
	return store.Identity{Provider: "google", Subject: subject, Email: email}
}

// providerUser makes a user as a provider's first sign-in does: no
// password, the identity linked.
func providerUser(t *testing.T, s *store.Store, hint string, id store.Identity) *store.User {
	t.Helper()
	u, err := s.CreateUserFromIdentity(context.Background(), hint, id, nil)
	require.NoError(t, err)
	return u
}

func TestProviderNameProfile(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"google", "github", "my-keycloak", "entra2", "a", strings.Repeat("x", 32), "-"} {
		assert.NoError(t, store.ValidProviderName(ok), "%q", ok)
	}
	for _, bad := range []string{"", "Google", "git hub", "gitlab.com", "key_cloak", "ｇｏｏｇｌｅ", strings.Repeat("x", 33), "é"} {
		err := store.ValidProviderName(bad)
		var input *store.InputError
		assert.ErrorAs(t, err, &input, "%q", bad)
	}
}

// A linked identity finds its user by the provider's subject alone: the
// same email at another subject finds nobody, and each sign-in records
// when it was and the email the provider says now.
func TestIdentityFindsItsUserBySubjectNeverByEmail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	require.NoError(t, s.LinkIdentity(ctx, alice.ID, google("sub-1", "alice@example.com")))

	u, err := s.UserByIdentity(ctx, google("sub-1", "alice@new.example"))
	require.NoError(t, err)
	assert.Equal(t, alice.ID, u.ID)
	assert.True(t, u.HasPassword)

	for _, other := range []store.Identity{
		google("sub-2", "alice@example.com"),                               // a recycled address
		{Provider: "github", Subject: "sub-1", Email: "alice@example.com"}, // another provider's subject
		google("SUB-1", ""), google("sub-1 ", ""), {Provider: "Google", Subject: "sub-1"}, // no other spelling
	} {
		_, err := s.UserByIdentity(ctx, other)
		assert.ErrorIs(t, err, store.ErrIdentityNotFound, "%+v", other)
	}

	ids, err := s.Identities(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, ids, 1)
	assert.Equal(t, "google", ids[0].Provider)
	assert.Equal(t, "sub-1", ids[0].Subject)
	assert.Equal(t, "alice@new.example", ids[0].Email, "the email as the provider said it last")
	assert.WithinDuration(t, time.Now(), ids[0].LastUsedAt, time.Minute)

	_, err = s.UserByIdentity(ctx, google("sub-1", ""))
	require.NoError(t, err)
	ids, err = s.Identities(ctx, alice.ID)
	require.NoError(t, err)
	assert.Empty(t, ids[0].Email, "an email no longer verified is not kept")

	require.NoError(t, s.DeleteUser(ctx, "alice"))
	_, err = s.UserByIdentity(ctx, google("sub-1", ""))
	assert.ErrorIs(t, err, store.ErrIdentityNotFound, "identities go with their user")
}

func TestLinkIdentityRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	require.NoError(t, s.LinkIdentity(ctx, alice.ID, google("sub-1", "alice@example.com")))

	assert.ErrorIs(t, s.LinkIdentity(ctx, bob.ID, google("sub-1", "")), store.ErrIdentityTaken)
	assert.ErrorIs(t, s.LinkIdentity(ctx, alice.ID, google("sub-2", "")), store.ErrProviderLinked,
		"one identity of a provider a user")
	assert.NoError(t, s.LinkIdentity(ctx, alice.ID, google("sub-1", "alice@example.com")), "linking again is no change")
	assert.NoError(t, s.LinkIdentity(ctx, alice.ID, store.Identity{Provider: "github", Subject: "583231"}))
	assert.ErrorIs(t, s.LinkIdentity(ctx, "00000000-0000-0000-0000-000000000000", google("sub-3", "")), store.ErrUserNotFound)
	assert.ErrorIs(t, s.LinkIdentity(ctx, "not a uuid", google("sub-3", "")), store.ErrUserNotFound)

	for _, bad := range []store.Identity{
		google("", ""), google(strings.Repeat("s", 256), ""), google("a\x00b", ""), google("\xff", ""),
		{Provider: "Google", Subject: "sub-3"}, google("sub-3", strings.Repeat("e", 321)),
	} {
		var input *store.InputError
		assert.ErrorAs(t, s.LinkIdentity(ctx, bob.ID, bad), &input, "%+v", bad)
	}
	assert.NoError(t, s.LinkIdentity(ctx, bob.ID, google(strings.Repeat("s", 255), "")), "255 bytes, OIDC's longest sub")

	ids, err := s.Identities(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"github", "google"}, []string{ids[0].Provider, ids[1].Provider}, "by provider")
	none, err := s.Identities(ctx, "00000000-0000-0000-0000-000000000000")
	require.NoError(t, err)
	assert.Empty(t, none)
}

// A user keeps a way to sign in: the last of their password, passkeys and
// identities cannot be taken away, and a passkey counts as one.
func TestTheLastWayToSignInStays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	carol := providerUser(t, s, "carol", google("sub-c", "carol@example.com"))
	assert.False(t, carol.HasPassword)

	assert.ErrorIs(t, s.UnlinkIdentity(ctx, carol.ID, "google"), store.ErrLastSignInMethod)
	_, err := s.UserByIdentity(ctx, google("sub-c", ""))
	require.NoError(t, err, "a refused unlink changes nothing")

	require.NoError(t, s.LinkIdentity(ctx, carol.ID, store.Identity{Provider: "github", Subject: "1"}))
	require.NoError(t, s.UnlinkIdentity(ctx, carol.ID, "google"), "github is left")
	assert.ErrorIs(t, s.UnlinkIdentity(ctx, carol.ID, "google"), store.ErrIdentityNotFound)

	must(s.AddPasskey(ctx, newPasskey(carol.ID, "key-1", "Laptop")))
	require.NoError(t, s.UnlinkIdentity(ctx, carol.ID, "github"), "a passkey is a whole sign-in")
	gone, err := s.DeletePasskey(ctx, carol.ID, []byte("key-1"))
	assert.ErrorIs(t, err, store.ErrLastSignInMethod)
	assert.False(t, gone)
	assert.Len(t, must(s.UserPasskeys(ctx, carol.ID)), 1, "the refused passkey stays")
	gone, err = s.DeletePasskey(ctx, carol.ID, []byte("someone else's"))
	require.NoError(t, err, "no passkey to remove is no refusal")
	assert.False(t, gone)

	_, err = s.ChangePassword(ctx, carol.ID, "a password at last", "")
	require.NoError(t, err)
	gone, err = s.DeletePasskey(ctx, carol.ID, []byte("key-1"))
	require.NoError(t, err, "the password is left")
	assert.True(t, gone)

	alice := newUser(t, s, "alice")
	require.NoError(t, s.LinkIdentity(ctx, alice.ID, google("sub-a", "")))
	require.NoError(t, s.UnlinkIdentity(ctx, alice.ID, "google"), "her password is left")
	assert.ErrorIs(t, s.UnlinkIdentity(ctx, "00000000-0000-0000-0000-000000000000", "google"), store.ErrUserNotFound)
	assert.ErrorIs(t, s.UnlinkIdentity(ctx, alice.ID, "Not A Provider"), store.ErrIdentityNotFound)
}

// Two tabs removing a user's two last ways at once take turns: one is
// removed, the other refused, whichever comes first, every round.
func TestRacingRemovalsLeaveAWayToSignIn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	for round := range 10 {
		u := providerUser(t, s, "dave", google("sub-"+string(rune('a'+round)), ""))
		require.NoError(t, s.LinkIdentity(ctx, u.ID, store.Identity{Provider: "github", Subject: string(rune('a' + round))}))
		must(s.AddPasskey(ctx, newPasskey(u.ID, "key-"+string(u.ID), "Phone")))
		removed := race(t, 3, store.ErrLastSignInMethod, func(i int) error {
			if i < 2 {
				return s.UnlinkIdentity(ctx, u.ID, []string{"google", "github"}[i])
			}
			_, err := s.DeletePasskey(ctx, u.ID, []byte("key-"+string(u.ID)))
			return err
		})
		assert.Equal(t, 2, removed, "round %d: two of three ways removed, the last kept", round)
	}
}

// race runs try(0) to try(n-1) at once and returns how many succeeded;
// each of the others must have failed with refused.
func race(t *testing.T, n int, refused error, try func(i int) error) int {
	t.Helper()
	start := make(chan struct{})
	var succeeded atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			if err := try(i); err == nil {
				succeeded.Add(1)
			} else {
				assert.ErrorIs(t, err, refused)
			}
		})
	}
	close(start)
	wg.Wait()
	return int(succeeded.Load())
}

// A user without a password signs in with no password, not even the fake
// hash's own, and a wrong guess answers as a wrong password does; setting
// a password gives them one.
func TestAUserWithoutAPasswordHasNone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	erin := providerUser(t, s, "erin", google("sub-e", ""))
	for _, password := range []string{"", "caddy-pgsession timing defence", "correct horse battery"} {
		_, err := s.VerifyPassword(ctx, "erin", password)
		assert.ErrorIs(t, err, store.ErrInvalidCredentials, "%q", password)
		assert.NotErrorIs(t, err, store.ErrUnknownUser, "erin is an account")
	}
	for _, u := range []*store.User{must(s.GetUser(ctx, erin.ID)), must(s.GetUserByName(ctx, "erin")), &must(s.ListUsers(ctx))[0]} {
		assert.False(t, u.HasPassword)
	}
	token, sess, err := s.CreateSession(ctx, store.SessionParams{User: *erin, Lifetime: time.Hour, Method: store.MethodProvider})
	require.NoError(t, err)
	assert.False(t, sess.User.HasPassword)
	assert.False(t, must(s.GetSession(ctx, token)).User.HasPassword)

	_, err = s.ChangePassword(ctx, erin.ID, "correct horse battery", token)
	require.NoError(t, err)
	u, err := s.VerifyPassword(ctx, "erin", "correct horse battery")
	require.NoError(t, err)
	assert.True(t, u.HasPassword)
	assert.True(t, must(s.GetSession(ctx, token)).User.HasPassword)
}

// A wrong password for a user without one takes as long as one for a user
// with an argon2id hash: timing does not tell which accounts have none.
func TestNoPasswordTakesAsLongAsAWrongOne(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{Argon2: store.DefaultArgon2})
	_, err := s.CreateUser(ctx, "frank", "correct horse battery", false)
	require.NoError(t, err)
	providerUser(t, s, "grace", google("sub-g", ""))
	medians := medianFailedChecks(t, s, "frank", "grace")
	wrong, none := medians[0], medians[1]
	t.Logf("median failed check: wrong password %v, no password %v", wrong, none)
	assert.Greater(t, none, wrong/2, "no password answers sooner than a wrong one")
	assert.Less(t, none, wrong*2, "no password answers later than a wrong one")
}

// A user is a member of the groups that exist among those a provider's
// claim lists, for as long as it lists them; what an admin granted stays
// whatever the claim says, and an unlinked provider's memberships go.
func TestProviderGroupsFollowTheClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migrated.NewDatabase(t)
	s := openStore(t, url, store.Options{})
	for _, g := range []string{"ops", "dev", "admins"} {
		must(s.CreateGroup(ctx, g))
	}
	alice := newUser(t, s, "alice")
	require.NoError(t, s.AddToGroups(ctx, alice.ID, "admins"))
	require.NoError(t, s.LinkIdentity(ctx, alice.ID, google("sub-1", "")))
	h := listen(t, s, url)
	h.waitFor(t, "the purge of a new connection", func(inv store.Invalidation) bool { return inv.All })
	heardAlice := func(inv store.Invalidation) bool { return len(inv.Users) == 1 && inv.Users[0] == alice.ID }

	require.NoError(t, s.SyncProviderGroups(ctx, alice.ID, "google", []string{"ops", "dev", "nope", "Not A Group", "ops"}))
	assert.Equal(t, []string{"admins", "dev", "ops"}, must(s.UserGroups(ctx, alice.ID)), "a claim joins groups that exist")
	assert.Equal(t, 2, count(t, s, `SELECT count(*) FROM pgsession.user_groups WHERE provider = 'google'`))
	h.waitFor(t, "alice joining", heardAlice)

	h.reset()
	require.NoError(t, s.SyncProviderGroups(ctx, alice.ID, "google", []string{"ops"}))
	assert.Equal(t, []string{"admins", "ops"}, must(s.UserGroups(ctx, alice.ID)), "a group the claim dropped is left")
	h.waitFor(t, "alice leaving dev", heardAlice)

	require.NoError(t, s.SyncProviderGroups(ctx, alice.ID, "google", nil))
	assert.Equal(t, []string{"admins"}, must(s.UserGroups(ctx, alice.ID)), "an admin's membership stays")

	require.NoError(t, s.SyncProviderGroups(ctx, alice.ID, "google", []string{"ops", "dev"}))
	require.NoError(t, s.AddToGroups(ctx, alice.ID, "ops"), "an admin joins her to a group the claim made")
	require.NoError(t, s.SyncProviderGroups(ctx, alice.ID, "google", []string{}))
	assert.Equal(t, []string{"admins", "ops"}, must(s.UserGroups(ctx, alice.ID)), "ops is the admin's now")

	// Quiet: a claim that changes nothing. Notifications come in the order
	// of the commits, so once a marker after a change is heard, whatever
	// the change sent was heard before it.
	require.NoError(t, s.SyncProviderGroups(ctx, alice.ID, "google", []string{"dev"}))
	bob, carol := newUser(t, s, "bob"), newUser(t, s, "carol")
	marker := func(u *store.User) {
		require.NoError(t, s.AddToGroups(ctx, u.ID, "dev"))
		h.waitFor(t, "the marker", func(inv store.Invalidation) bool { return len(inv.Users) == 1 && inv.Users[0] == u.ID })
	}
	marker(bob)
	h.reset()
	require.NoError(t, s.SyncProviderGroups(ctx, alice.ID, "google", []string{"dev", "nope"}))
	marker(carol)
	assert.Equal(t, []store.Invalidation{{Users: []store.UserID{carol.ID}}}, h.all(), "nothing for a claim that changed nothing")

	require.NoError(t, s.UnlinkIdentity(ctx, alice.ID, "google"))
	assert.Equal(t, []string{"admins", "ops"}, must(s.UserGroups(ctx, alice.ID)), "unlinked, the claim's groups go")
	h.waitFor(t, "alice leaving with the provider", heardAlice)

	assert.ErrorIs(t, s.SyncProviderGroups(ctx, "00000000-0000-0000-0000-000000000000", "google", []string{"ops"}), store.ErrUserNotFound)
	var input *store.InputError
	assert.ErrorAs(t, s.SyncProviderGroups(ctx, alice.ID, "Google", nil), &input)
}
