package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// An admin's permission links the first sign-in whose verified email is
// the one allowed, whatever its case, and only that one: the link is then
// by subject, and the same email at another subject links nothing more.
func TestAnInvitationLinksOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, admin := newUser(t, s, "alice"), newUser(t, s, "admin")
	inv, err := s.AllowIdentity(ctx, store.IdentityInvitation{Provider: "google", Email: "Alice@Example.com",
		UserID: alice.ID, CreatedBy: admin.ID, ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	assert.Equal(t, "alice@example.com", inv.Email, "kept lower-cased")
	assert.Equal(t, admin.ID, inv.CreatedBy)
	assert.WithinDuration(t, time.Now().Add(time.Hour), inv.ExpiresAt, time.Minute)
	assert.Equal(t, []store.IdentityInvitation{*inv}, must(s.IdentityInvitations(ctx, alice.ID)))

	_, err = s.TakeIdentityInvitation(ctx, store.Identity{Provider: "github", Subject: "1", Email: "alice@example.com"})
	assert.ErrorIs(t, err, store.ErrInvitationNotFound, "another provider's")
	_, err = s.TakeIdentityInvitation(ctx, google("sub-1", ""))
	assert.ErrorIs(t, err, store.ErrInvitationNotFound, "no verified email")

	u, err := s.TakeIdentityInvitation(ctx, google("sub-1", "ALICE@example.com"))
	require.NoError(t, err)
	assert.Equal(t, alice.ID, u.ID)
	assert.Equal(t, alice.ID, must(s.UserByIdentity(ctx, google("sub-1", ""))).ID, "linked by subject")
	assert.Empty(t, must(s.IdentityInvitations(ctx, alice.ID)), "used up")

	_, err = s.TakeIdentityInvitation(ctx, google("sub-2", "alice@example.com"))
	assert.ErrorIs(t, err, store.ErrInvitationNotFound, "a second account with the address links nothing")
	_, err = s.UserByIdentity(ctx, google("sub-2", ""))
	assert.ErrorIs(t, err, store.ErrIdentityNotFound)
}

func TestInvitationRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	allow := func(email string, userID store.UserID, expires time.Time) error {
		_, err := s.AllowIdentity(ctx, store.IdentityInvitation{Provider: "google", Email: email, UserID: userID, ExpiresAt: expires})
		return err
	}

	for _, bad := range []string{"", "alice", "@example.com", "alice@", "a@b@c", "alice @example.com", "alice@exa\x00mple.com"} {
		var input *store.InputError
		assert.ErrorAs(t, allow(bad, alice.ID, time.Time{}), &input, "%q", bad)
	}
	var input *store.InputError
	assert.ErrorAs(t, allow("alice@example.com", alice.ID, time.Now().Add(-time.Minute)), &input, "an expiry gone by")
	_, err := s.AllowIdentity(ctx, store.IdentityInvitation{Provider: "Google", Email: "alice@example.com", UserID: alice.ID})
	assert.ErrorAs(t, err, &input)
	assert.ErrorIs(t, allow("alice@example.com", "00000000-0000-0000-0000-000000000000", time.Time{}), store.ErrUserNotFound)

	require.NoError(t, s.LinkIdentity(ctx, bob.ID, google("sub-b", "")))
	assert.ErrorIs(t, allow("bob@example.com", bob.ID, time.Time{}), store.ErrProviderLinked,
		"a sign-in could not link a second google identity")

	// Allowing an email again replaces what it allowed.
	carol := newUser(t, s, "carol")
	require.NoError(t, allow("shared@example.com", alice.ID, time.Time{}))
	require.NoError(t, allow("shared@example.com", carol.ID, time.Time{}))
	assert.Empty(t, must(s.IdentityInvitations(ctx, alice.ID)))
	assert.Len(t, must(s.IdentityInvitations(ctx, carol.ID)), 1)
	require.NoError(t, allow("shared@example.com", alice.ID, time.Time{}))
	assert.True(t, must(s.IdentityInvitations(ctx, alice.ID))[0].ExpiresAt.IsZero(), "no expiry")

	// A subject another user linked takes nothing: the invitation stays.
	_, err = s.TakeIdentityInvitation(ctx, google("sub-b", "shared@example.com"))
	assert.ErrorIs(t, err, store.ErrIdentityTaken)
	assert.Len(t, must(s.IdentityInvitations(ctx, alice.ID)), 1, "kept for the sign-in it was meant for")

	assert.Equal(t, int64(1), must(s.WithdrawIdentityInvitations(ctx, alice.ID, "google")))
	assert.Equal(t, int64(0), must(s.WithdrawIdentityInvitations(ctx, alice.ID, "google")))
	_, err = s.TakeIdentityInvitation(ctx, google("sub-a", "shared@example.com"))
	assert.ErrorIs(t, err, store.ErrInvitationNotFound, "withdrawn")
}

// An expired invitation links nothing, is not listed, and the cleanup
// deletes it.
func TestInvitationsExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	for _, email := range []string{"old@example.com", "live@example.com"} {
		_, err := s.AllowIdentity(ctx, store.IdentityInvitation{Provider: "google", Email: email, UserID: alice.ID,
			ExpiresAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
	}
	exec(t, s, `UPDATE pgsession.identity_invitations SET created_at = now() - interval '2 hours',
		expires_at = now() - interval '1 second' WHERE email = 'old@example.com'`)

	_, err := s.TakeIdentityInvitation(ctx, google("sub-1", "old@example.com"))
	assert.ErrorIs(t, err, store.ErrInvitationNotFound)
	invs := must(s.IdentityInvitations(ctx, alice.ID))
	require.Len(t, invs, 1)
	assert.Equal(t, "live@example.com", invs[0].Email)

	c, ran, err := s.RunCleanup(ctx, "test", time.Minute)
	require.NoError(t, err)
	require.True(t, ran)
	assert.Equal(t, int64(1), c.IdentityInvitations)
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM pgsession.identity_invitations`))
}

// Sign-ins with two accounts racing for one invitation: one links, the
// others find it used, every round.
func TestRacingSignInsTakeAnInvitationOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	for round := range 5 {
		_, err := s.AllowIdentity(ctx, store.IdentityInvitation{Provider: "google", Email: "alice@example.com", UserID: alice.ID})
		require.NoError(t, err)
		linked := race(t, 8, store.ErrInvitationNotFound, func(i int) error {
			_, err := s.TakeIdentityInvitation(ctx, google(string(rune('a'+round))+string(rune('0'+i)), "alice@example.com"))
			return err
		})
		assert.Equal(t, 1, linked, "round %d", round)
		assert.Len(t, must(s.Identities(ctx, alice.ID)), 1)
		require.NoError(t, s.UnlinkIdentity(ctx, alice.ID, "google"), "round %d", round) // her password is left
	}
}
