package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

const invitedPassword = "correct horse battery"

// invite makes an invitation into groups, open for a day.
func invite(t *testing.T, s *store.Store, inv store.Invitation) (string, *store.Invitation) {
	t.Helper()
	token, got, err := s.CreateInvitation(context.Background(), inv, 24*time.Hour)
	require.NoError(t, err)
	return token, got
}

// An invitation keeps the hash of its token only; its link makes one user,
// in the groups the admin chose, once.
func TestUserInvitationMakesOneUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	admin := newUser(t, s, "admin")
	must(s.CreateGroup(ctx, "ops"))
	must(s.CreateGroup(ctx, "dev"))
	token, inv := invite(t, s, store.Invitation{Email: " Ada@Example.com", Groups: []string{"ops", "dev", "ops"}, CreatedBy: admin.ID})
	assert.True(t, store.ValidToken(token))
	assert.Equal(t, "ada@example.com", inv.Email)
	assert.Equal(t, []string{"dev", "ops"}, inv.Groups)
	assert.Equal(t, "admin", inv.CreatedByName)
	assert.Equal(t, "open", inv.Status())
	assert.Equal(t, 0, count(t, s, `SELECT count(*) FROM pgsession.user_invitations WHERE token_hash = $1`, token),
		"the token is not stored")
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM pgsession.user_invitations WHERE token_hash = $1`,
		string(store.HashToken(token))))

	peeked, err := s.PeekInvitation(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, inv.ID, peeked.ID)

	must(s.DeleteGroup(ctx, "dev"))
	u, err := s.AcceptInvitation(ctx, token, "Ada", invitedPassword)
	require.NoError(t, err)
	assert.Equal(t, "Ada", u.Username)
	assert.Equal(t, []string{"ops"}, u.Groups, "the groups that still exist")
	assert.True(t, u.HasPassword)
	must(s.VerifyPassword(ctx, "ada", invitedPassword))
	assert.Equal(t, "ada@example.com", u.Email, "the address it was for, verified")
	assert.True(t, u.EmailVerified)

	_, err = s.PeekInvitation(ctx, token)
	assert.ErrorIs(t, err, store.ErrInvitationUsed)
	_, err = s.AcceptInvitation(ctx, token, "Ada2", invitedPassword)
	assert.ErrorIs(t, err, store.ErrInvitationUsed)
	_, err = s.GetUserByName(ctx, "Ada2")
	assert.ErrorIs(t, err, store.ErrUserNotFound)

	list := must(s.ListInvitations(ctx, true))
	require.Len(t, list, 1)
	assert.Equal(t, "used", list[0].Status())
	assert.Equal(t, u.ID, list[0].UsedBy)
	assert.Equal(t, "Ada", list[0].UsedByName)
	assert.Empty(t, must(s.ListInvitations(ctx, false)), "used ones only when asked for")
	assert.ErrorIs(t, s.RevokeInvitation(ctx, inv.ID), store.ErrInvitationUsed)
}

// What cannot be used says why, and costs nothing: a token of the wrong
// shape, one nobody issued, an expired one.
func TestUserInvitationRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	for _, token := range []string{"", "short", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		_, err := s.PeekInvitation(ctx, token)
		assert.ErrorIs(t, err, store.ErrInvitationUnknown, "%q", token)
		_, err = s.AcceptInvitation(ctx, token, "bob", invitedPassword)
		assert.ErrorIs(t, err, store.ErrInvitationUnknown, "%q", token)
	}
	token, inv := invite(t, s, store.Invitation{})
	_, err := s.Pool().Exec(ctx, `UPDATE pgsession.user_invitations
		SET created_at = now() - interval '2 days', expires_at = now() - interval '1 second' WHERE id = $1`, inv.ID)
	require.NoError(t, err)
	_, err = s.PeekInvitation(ctx, token)
	assert.ErrorIs(t, err, store.ErrInvitationExpired)
	_, err = s.AcceptInvitation(ctx, token, "bob", invitedPassword)
	assert.ErrorIs(t, err, store.ErrInvitationExpired)
	assert.Equal(t, "expired", must(s.ListInvitations(ctx, false))[0].Status())

	for _, tc := range []struct {
		inv store.Invitation
		ttl time.Duration
		err any
	}{
		{store.Invitation{Email: "nobody"}, time.Hour, new(*store.InputError)},
		{store.Invitation{Groups: []string{"Ops"}}, time.Hour, new(*store.InputError)},
		{store.Invitation{Groups: []string{"missing"}}, time.Hour, new(*store.GroupNotFoundError)},
		{store.Invitation{}, 0, new(*store.InputError)},
		{store.Invitation{}, store.MaxInvitationLifetime + time.Hour, new(*store.InputError)},
	} {
		_, _, err := s.CreateInvitation(ctx, tc.inv, tc.ttl)
		assert.ErrorAs(t, err, tc.err, "%+v %s", tc.inv, tc.ttl)
	}
	_, _, err = s.CreateInvitation(ctx, store.Invitation{CreatedBy: "00000000-0000-0000-0000-000000000000"}, time.Hour)
	assert.ErrorIs(t, err, store.ErrUserNotFound)
}

// A name or password the store would not take, or a taken name, leaves the
// invitation open for the next try.
func TestUserInvitationKeptOnBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	newUser(t, s, "alice")
	token, _ := invite(t, s, store.Invitation{})
	for _, tc := range []struct {
		name, password string
		err            any
	}{
		{"bob", "short", new(*store.InputError)},
		{"", invitedPassword, new(*store.InputError)},
		{"alice", invitedPassword, &store.ErrUserExists},
		{"ALICE", invitedPassword, &store.ErrUserExists},
		{"аlice", invitedPassword, new(*store.LookalikeError)}, // Cyrillic а
	} {
		_, err := s.AcceptInvitation(ctx, token, tc.name, tc.password)
		if target, ok := tc.err.(*error); ok {
			assert.ErrorIs(t, err, *target, "%q", tc.name)
		} else {
			assert.ErrorAs(t, err, tc.err, "%q", tc.name)
		}
		must(s.PeekInvitation(ctx, token))
	}
	must(s.AcceptInvitation(ctx, token, "bob", invitedPassword))

	// An address another user has is left out, not the account.
	require.NoError(t, s.SetEmail(ctx, newUser(t, s, "carol").ID, "taken@example.com", true))
	token, _ = invite(t, s, store.Invitation{Email: "taken@example.com"})
	u, err := s.AcceptInvitation(ctx, token, "dave", invitedPassword)
	require.NoError(t, err)
	assert.Empty(t, u.Email)
}

// Two uses of one link at once make one account.
func TestUserInvitationRacingAccepts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	token, _ := invite(t, s, store.Invitation{})
	const racers = 8
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			_, errs[i] = s.AcceptInvitation(ctx, token, "racer"+string(rune('a'+i)), invitedPassword)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			assert.ErrorIs(t, err, store.ErrInvitationUsed)
		}
	}
	assert.Equal(t, 1, won)
	assert.Equal(t, 1, count(t, s, `SELECT count(*) FROM pgsession.users`))
}

// A provider's sign-in that began on an invitation makes the invited user
// with the identity linked; an identity linked to someone already makes
// nothing and leaves the invitation open.
func TestUserInvitationWithIdentity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	must(s.CreateGroup(ctx, "ops"))
	providerUser(t, s, "alice", google("sub-alice", ""))
	_, inv := invite(t, s, store.Invitation{Groups: []string{"ops"}})

	_, err := s.AcceptInvitationWithIdentity(ctx, inv.ID, "someone", google("sub-alice", ""))
	assert.ErrorIs(t, err, store.ErrIdentityTaken)
	assert.Equal(t, "open", must(s.ListInvitations(ctx, false))[0].Status())

	u, err := s.AcceptInvitationWithIdentity(ctx, inv.ID, "Ada Lovelace", google("sub-ada", "ada@example.com"))
	require.NoError(t, err)
	assert.Equal(t, "Ada Lovelace", u.Username)
	assert.False(t, u.HasPassword)
	assert.Equal(t, []string{"ops"}, u.Groups)
	assert.Equal(t, u.ID, must(s.UserByIdentity(ctx, google("sub-ada", ""))).ID)

	_, err = s.AcceptInvitationWithIdentity(ctx, inv.ID, "again", google("sub-other", ""))
	assert.ErrorIs(t, err, store.ErrInvitationUsed)
	_, err = s.AcceptInvitationWithIdentity(ctx, "00000000-0000-0000-0000-000000000000", "x", google("sub-x", ""))
	assert.ErrorIs(t, err, store.ErrInvitationUnknown)
}

// Revoking deletes an open invitation and the sign-ins that carry it;
// cleanup deletes what was used or expired long ago.
func TestUserInvitationRevokeAndCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	token, inv := invite(t, s, store.Invitation{})
	flow, err := s.BeginIdentityFlow(ctx, store.IdentityFlow{Provider: "google", InvitationID: inv.ID})
	require.NoError(t, err)
	require.NoError(t, s.RevokeInvitation(ctx, inv.ID))
	assert.ErrorIs(t, s.RevokeInvitation(ctx, inv.ID), store.ErrInvitationUnknown)
	assert.ErrorIs(t, s.RevokeInvitation(ctx, "not-a-uuid"), store.ErrInvitationUnknown)
	_, err = s.PeekInvitation(ctx, token)
	assert.ErrorIs(t, err, store.ErrInvitationUnknown)
	_, err = s.TakeIdentityFlow(ctx, "google", flow.State, flow.Binding)
	assert.ErrorIs(t, err, store.ErrFlowNotFound, "the sign-in went with the invitation")

	_, err = s.BeginIdentityFlow(ctx, store.IdentityFlow{Provider: "google", InvitationID: inv.ID})
	assert.ErrorIs(t, err, store.ErrInvitationUnknown)
	_, carried := invite(t, s, store.Invitation{})
	flow, err = s.BeginIdentityFlow(ctx, store.IdentityFlow{Provider: "google", InvitationID: carried.ID})
	require.NoError(t, err)
	taken, err := s.TakeIdentityFlow(ctx, "google", flow.State, flow.Binding)
	require.NoError(t, err)
	assert.Equal(t, carried.ID, taken.InvitationID)

	usedToken, _ := invite(t, s, store.Invitation{})
	must(s.AcceptInvitation(ctx, usedToken, "bob", invitedPassword))
	_, old := invite(t, s, store.Invitation{})
	_, err = s.Pool().Exec(ctx, `UPDATE pgsession.user_invitations SET used_at = now() - interval '31 days' WHERE used_at IS NOT NULL`)
	require.NoError(t, err)
	_, err = s.Pool().Exec(ctx, `UPDATE pgsession.user_invitations
		SET created_at = now() - interval '40 days', expires_at = now() - interval '31 days' WHERE id = $1`, old.ID)
	require.NoError(t, err)
	n, err := s.CleanupInvitations(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "the one used and the one expired a month ago")
	left := must(s.ListInvitations(ctx, true))
	require.Len(t, left, 1)
	assert.Equal(t, carried.ID, left[0].ID)
}
