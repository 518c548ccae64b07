package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest/migrated"
	"github.com/pgsession/caddy-pgsession/store"
)

// Every name outside the profile is refused with the one sentence that says
// what fits, which a route can send back as it is; the database holds names
// written by hand to the same profile.
func TestGroupNameProfile(t *testing.T) {
	t.Parallel()
	s := newStore(t, store.Options{})
	const rule = "a group name is 1 to 64 characters, each a lowercase letter a-z, a digit, '-', '_' or '.', " +
		"the first a letter or a digit"
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"ops", true},
		{"a", true},
		{"7", true},
		{"0day", true},
		{"team-a", true},
		{"team_b", true},
		{"v1.2", true},
		{"trailing-", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"Ops", false},
		{"OPS", false},
		{"dev ops", false},
		{" ops", false},
		{"ops ", false},
		{"-ops", false},
		{"_ops", false},
		{".ops", false},
		{"ops/dev", false},
		{"ops,dev", false},
		{"ops\n", false},
		{"op\x00s", false},
		{"café", false},
		{"ｏｐｓ", false},       // fullwidth
		{"оps", false},       // Cyrillic о
		{"ops\u200b", false}, // zero-width space
		{"\xff", false},
	} {
		_, sqlErr := s.Pool().Exec(context.Background(), `INSERT INTO pgsession.groups (name) VALUES ($1)`, tc.name)
		assert.Equal(t, tc.ok, sqlErr == nil, "%q by hand: %v", tc.name, sqlErr)
		err := store.ValidGroupName(tc.name)
		if tc.ok {
			assert.NoError(t, err, "%q", tc.name)
			continue
		}
		var input *store.InputError
		if assert.ErrorAs(t, err, &input, "%q", tc.name) {
			assert.Equal(t, rule, input.Msg, "%q", tc.name)
		}
	}
}

func TestGroupsCreateListDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")

	groups, err := s.ListGroups(ctx)
	require.NoError(t, err)
	assert.Empty(t, groups)

	ops, err := s.CreateGroup(ctx, "ops")
	require.NoError(t, err)
	assert.Equal(t, "ops", ops.Name)
	assert.Zero(t, ops.Members)
	assert.False(t, ops.CreatedAt.IsZero())
	must(s.CreateGroup(ctx, "dev"))
	must(s.CreateGroup(ctx, "empty"))
	_, err = s.CreateGroup(ctx, "ops")
	assert.ErrorIs(t, err, store.ErrGroupExists)
	var input *store.InputError
	_, err = s.CreateGroup(ctx, "Ops")
	assert.ErrorAs(t, err, &input, "no second spelling of ops")

	require.NoError(t, s.AddToGroups(ctx, alice.ID, "ops", "dev"))
	require.NoError(t, s.AddToGroups(ctx, bob.ID, "ops"))
	groups, err = s.ListGroups(ctx)
	require.NoError(t, err)
	require.Len(t, groups, 3)
	var names []string
	members := map[string]int64{}
	for _, g := range groups {
		names = append(names, g.Name)
		members[g.Name] = g.Members
	}
	assert.Equal(t, []string{"dev", "empty", "ops"}, names, "by name")
	assert.Equal(t, map[string]int64{"dev": 1, "empty": 0, "ops": 2}, members)

	n, err := s.DeleteGroup(ctx, "ops")
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "it had two members")
	assert.Equal(t, []string{"dev"}, must(s.UserGroups(ctx, alice.ID)), "the membership went with the group")
	assert.Empty(t, must(s.UserGroups(ctx, bob.ID)))
	_, err = s.DeleteGroup(ctx, "ops")
	assert.ErrorIs(t, err, store.ErrGroupNotFound)
	var missing *store.GroupNotFoundError
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, "ops", missing.Name)
	_, err = s.DeleteGroup(ctx, "OPS")
	assert.ErrorAs(t, err, &input, "a name outside the profile is refused, not looked up")
	assert.Len(t, must(s.ListGroups(ctx)), 2)
}

func TestJoiningAndLeavingGroupsTwiceIsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	for _, name := range []string{"b", "a_3", "a0", "a.2", "a-1"} {
		must(s.CreateGroup(ctx, name))
	}

	require.NoError(t, s.AddToGroups(ctx, alice.ID, "b", "a_3", "a0", "a.2", "a-1", "b"))
	require.NoError(t, s.AddToGroups(ctx, alice.ID, "a0", "b"))
	assert.Equal(t, []string{"a-1", "a.2", "a0", "a_3", "b"}, must(s.UserGroups(ctx, alice.ID)),
		"each group once, in byte order, whatever the database's locale")
	assert.Equal(t, 5, count(t, s, `SELECT count(*) FROM pgsession.user_groups`))

	require.NoError(t, s.RemoveFromGroups(ctx, alice.ID, "a0", "b"))
	require.NoError(t, s.RemoveFromGroups(ctx, alice.ID, "a0", "b"), "leaving a group one is not in")
	assert.Equal(t, []string{"a-1", "a.2", "a_3"}, must(s.UserGroups(ctx, alice.ID)))
	require.NoError(t, s.AddToGroups(ctx, alice.ID), "no groups, no change")
	require.NoError(t, s.RemoveFromGroups(ctx, alice.ID))
	assert.Len(t, must(s.UserGroups(ctx, alice.ID)), 3)
}

// A change that names something that does not exist changes nothing, and
// says what is missing.
func TestGroupChangesRefuseUnknownNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, gone := newUser(t, s, "alice"), newUser(t, s, "gone")
	must(s.CreateGroup(ctx, "ops"))
	require.NoError(t, s.DeleteUser(ctx, "gone"))

	for name, change := range map[string]func(store.UserID, ...string) error{
		"add": func(id store.UserID, g ...string) error { return s.AddToGroups(ctx, id, g...) },
		"remove": func(id store.UserID, g ...string) error {
			require.NoError(t, s.AddToGroups(ctx, alice.ID, "ops"))
			return s.RemoveFromGroups(ctx, id, g...)
		},
	} {
		before := must(s.UserGroups(ctx, alice.ID))
		var missing *store.GroupNotFoundError
		err := change(alice.ID, "ops", "zz", "nope")
		require.ErrorAs(t, err, &missing, name)
		assert.ErrorIs(t, err, store.ErrGroupNotFound, name)
		assert.Equal(t, "nope", missing.Name, "%s: the first missing group by name", name)
		assert.Equal(t, `no group "nope"`, err.Error(), name)
		if name == "add" {
			assert.Equal(t, before, must(s.UserGroups(ctx, alice.ID)), "%s: not even ops changed", name)
		} else {
			assert.Equal(t, []string{"ops"}, must(s.UserGroups(ctx, alice.ID)), "%s: not even ops changed", name)
		}

		var input *store.InputError
		assert.ErrorAs(t, change(alice.ID, "ops", "Ops"), &input, name)
		for _, id := range []store.UserID{gone.ID, "not-a-uuid", ""} {
			assert.ErrorIs(t, change(id, "ops"), store.ErrUserNotFound, "%s: user %q", name, id)
		}
	}
	_, err := s.UserGroups(ctx, gone.ID)
	assert.ErrorIs(t, err, store.ErrUserNotFound)
	assert.Zero(t, count(t, s, `SELECT count(*) FROM pgsession.user_groups WHERE user_id = $1`, gone.ID))
}

// Deleting a user takes them out of their groups; the groups stay.
func TestMembershipsGoWithTheirUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	must(s.CreateGroup(ctx, "ops"))
	require.NoError(t, s.AddToGroups(ctx, alice.ID, "ops"))
	require.NoError(t, s.AddToGroups(ctx, bob.ID, "ops"))

	require.NoError(t, s.DeleteUser(ctx, "alice"))
	groups := must(s.ListGroups(ctx))
	require.Len(t, groups, 1)
	assert.Equal(t, int64(1), groups[0].Members)
	assert.Equal(t, []string{"ops"}, must(s.UserGroups(ctx, bob.ID)))
}

// A user's groups come with the user and with each of their sessions, the
// gate's lookup included, and a change shows at the next lookup.
func TestUsersAndSessionsCarryTheirGroups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	assert.Empty(t, alice.Groups, "a new user is in no group")
	must(s.CreateGroup(ctx, "ops"))
	must(s.CreateGroup(ctx, "dev"))
	require.NoError(t, s.AddToGroups(ctx, alice.ID, "ops", "dev"))
	token := login(t, s, alice)

	want := []string{"dev", "ops"}
	assert.Equal(t, want, must(s.GetUser(ctx, alice.ID)).Groups)
	assert.Equal(t, want, must(s.GetUserByName(ctx, "ALICE")).Groups)
	users := must(s.ListUsers(ctx))
	require.Len(t, users, 2)
	assert.Equal(t, want, users[0].Groups, "alice")
	assert.Empty(t, users[1].Groups, "bob")
	verified, err := s.VerifyPassword(ctx, "alice", "correct horse battery")
	require.NoError(t, err)
	assert.Equal(t, want, verified.Groups)

	sess := must(s.GetSession(ctx, token))
	require.NotNil(t, sess)
	assert.Equal(t, want, sess.User.Groups)
	assert.Equal(t, want, sess.Live().Groups)
	live, found, err := s.CheckSession(ctx, store.HashToken(token))
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, want, live.Groups)
	bobLive, found, err := s.CheckSession(ctx, store.HashToken(login(t, s, bob)))
	require.NoError(t, err)
	require.True(t, found)
	assert.Empty(t, bobLive.Groups)

	require.NoError(t, s.RemoveFromGroups(ctx, alice.ID, "ops"))
	live, _, err = s.CheckSession(ctx, store.HashToken(token))
	require.NoError(t, err)
	assert.Equal(t, []string{"dev"}, live.Groups, "the session still lives, with one group less")
}

// Every server keeps sessions with their user's groups, so every change of
// a membership is announced as a change of its user: a join, a leave, and
// the deletion of a group, for each of its members; a join the user had
// already sends nothing.
func TestMembershipChangesAreAnnounced(t *testing.T) {
	ctx := context.Background()
	url := migrated.NewDatabase(t)
	s := openStore(t, url, store.Options{})
	alice, bob, carol := newUser(t, s, "alice"), newUser(t, s, "bob"), newUser(t, s, "carol")
	must(s.CreateGroup(ctx, "ops"))
	must(s.CreateGroup(ctx, "dev"))
	h := listen(t, s, url)
	h.waitFor(t, "the purge of a new connection", func(inv store.Invalidation) bool { return inv.All })
	changed := func(users ...*store.User) func(store.Invalidation) bool {
		return func(inv store.Invalidation) bool {
			heard := map[store.UserID]bool{}
			for _, id := range inv.Users {
				heard[id] = true
			}
			for _, u := range users {
				if !heard[u.ID] {
					return false
				}
			}
			return true
		}
	}

	require.NoError(t, s.AddToGroups(ctx, alice.ID, "ops", "dev"))
	h.waitFor(t, "alice joining", changed(alice))
	h.reset()
	require.NoError(t, s.AddToGroups(ctx, bob.ID, "ops"))
	h.waitFor(t, "bob joining", changed(bob))
	h.reset()
	require.NoError(t, s.RemoveFromGroups(ctx, alice.ID, "dev"))
	h.waitFor(t, "alice leaving", changed(alice))
	h.reset()
	_, err := s.DeleteGroup(ctx, "ops")
	require.NoError(t, err)
	h.waitFor(t, "the members of a deleted group", changed(alice, bob))

	// Quiet: joining a group one is in, leaving one one is not in, and a
	// refused change. A change after them is heard, so anything they had
	// sent would be too.
	must(s.CreateGroup(ctx, "ops"))
	h.reset()
	require.NoError(t, s.AddToGroups(ctx, alice.ID, "ops"))
	h.waitFor(t, "alice joining again", changed(alice))
	h.reset()
	require.NoError(t, s.AddToGroups(ctx, alice.ID, "ops"))
	require.NoError(t, s.RemoveFromGroups(ctx, alice.ID, "dev"))
	assert.ErrorIs(t, s.AddToGroups(ctx, alice.ID, "ops", "nope"), store.ErrGroupNotFound)
	require.NoError(t, s.AddToGroups(ctx, carol.ID, "dev"))
	h.waitFor(t, "the marker", changed(carol))
	assert.Equal(t, []store.Invalidation{{Users: []store.UserID{carol.ID}}}, h.all(),
		"nothing for the changes that changed nothing")

	// A membership edited by hand is announced for both users it touches.
	h.reset()
	exec(t, s, `UPDATE pgsession.user_groups SET user_id = $1 WHERE user_id = $2`, bob.ID, carol.ID)
	h.waitFor(t, "a membership moved by hand", changed(bob, carol))
}
