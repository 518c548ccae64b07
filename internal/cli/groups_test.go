package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// profile is the sentence every name outside the group name profile is
// refused with, after the name.
const profile = "a group name is 1 to 64 characters, each a lowercase letter a-z, a digit, '-', '_' or '.', " +
	"the first a letter or a digit"

func TestGroupAddListDelete(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)

	// Nothing set up by hand: group list installs the schema itself.
	r := executeDB(t, url, "", "group", "list")
	require.NoError(t, r.err)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "no groups\n", r.stderr)

	assert.Equal(t, "created group \"ops\"\n", executeOK(t, url, "", "group", "add", "ops"))
	assert.Equal(t, "created group \"dev-team\"\n", executeOK(t, url, "", "group", "add", "dev-team"))
	assert.Equal(t, "created group \"a.b_c\"\n", executeOK(t, url, "", "group", "add", "a.b_c"))
	r = executeDB(t, url, "", "group", "add", "ops")
	require.Error(t, r.err)
	assert.Equal(t, `group "ops" already exists`, r.err.Error())
	assert.Equal(t, "Error: group \"ops\" already exists\n", r.stderr, "one line, no usage")
	assert.Empty(t, r.stdout)

	s := openStore(t, url)
	ctx := context.Background()
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	require.NoError(t, s.AddToGroups(ctx, alice.ID, "ops", "dev-team"))
	require.NoError(t, s.AddToGroups(ctx, bob.ID, "ops"))

	out := executeOK(t, url, "", "group", "list")
	assert.Equal(t, [][]string{{"GROUP", "MEMBERS"}, {"a.b_c", "0"}, {"dev-team", "1"}, {"ops", "2"}}, table(out))
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	col := strings.Index(lines[0], "MEMBERS")
	for _, line := range lines[1:] {
		assert.Equal(t, " ", line[col-1:col], "the columns line up: %q", line)
		assert.NotEqual(t, " ", line[col:col+1], "the columns line up: %q", line)
	}

	assert.Equal(t, "deleted group \"ops\", which had 2 members\n", executeOK(t, url, "", "group", "delete", "ops"))
	assert.Equal(t, []string{"dev-team"}, mustGroups(t, s, alice), "alice stays in her other group")
	assert.Empty(t, mustGroups(t, s, bob))
	assert.Equal(t, "deleted group \"a.b_c\", which had 0 members\n", executeOK(t, url, "", "group", "delete", "a.b_c"))
	r = executeDB(t, url, "", "group", "delete", "ops")
	require.Error(t, r.err)
	assert.Equal(t, `no group "ops"`, r.err.Error())
	assert.Equal(t, "Error: no group \"ops\"\n", r.stderr)
	assert.Equal(t, [][]string{{"GROUP", "MEMBERS"}, {"dev-team", "1"}}, table(executeOK(t, url, "", "group", "list")))
}

// A name outside the profile is refused as typed, before the database is
// asked anything: never lowercased into a group someone else meant.
func TestGroupNamesOutsideTheProfileAreRefused(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice := addUser(t, s, "alice")
	_, err := s.CreateGroup(ctx, "ops")
	require.NoError(t, err)

	for _, name := range []string{"Ops", "OPS", "dev ops", ".ops", "", strings.Repeat("a", 65), "café", "ｏｐｓ"} {
		for _, args := range [][]string{
			{"group", "add", name},
			{"group", "delete", name},
			{"user", "join", "alice", "ops", name},
			{"user", "leave", "alice", name},
		} {
			r := executeDB(t, url, "", args...)
			if assert.Error(t, r.err, "%q", args) {
				assert.Equal(t, fmt.Sprintf("%q is not a group name: %s", name, profile), r.err.Error(), "%q", args)
			}
			assert.Empty(t, r.stdout, "%q", args)
		}
	}
	groups, err := s.ListGroups(ctx)
	require.NoError(t, err)
	require.Len(t, groups, 1, "no group was made or deleted")
	assert.Equal(t, "ops", groups[0].Name)
	assert.Empty(t, mustGroups(t, s, alice), "alice joined nothing, not even ops")
}

func TestUserJoinLeaveAndGroups(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice := addUser(t, s, "alice")
	addUser(t, s, "bob")
	for _, g := range []string{"ops", "dev", "staff"} {
		_, err := s.CreateGroup(ctx, g)
		require.NoError(t, err)
	}
	token := newSession(t, s, alice, "Firefox", "192.0.2.1")

	r := executeDB(t, url, "", "user", "groups", "alice")
	require.NoError(t, r.err)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "no groups for \"alice\"\n", r.stderr)

	assert.Equal(t, "\"alice\" is in dev, ops\n", executeOK(t, url, "", "user", "join", "ALICE", "ops", "dev"))
	assert.Equal(t, "\"alice\" is in dev, ops\n", executeOK(t, url, "", "user", "join", "alice", "ops"), "joining twice is joining once")
	assert.Equal(t, "dev\nops\n", executeOK(t, url, "", "user", "groups", "alice"), "one a line, sorted")
	live, found, err := s.CheckSession(ctx, store.HashToken(token))
	require.NoError(t, err)
	require.True(t, found, "joining ends no session")
	assert.Equal(t, []string{"dev", "ops"}, live.Groups, "a live session has the new groups at once")

	assert.Equal(t, "\"alice\" is in dev, ops, staff\n", executeOK(t, url, "", "user", "join", "alice", "staff"))
	assert.Equal(t, "\"alice\" is in staff\n", executeOK(t, url, "", "user", "leave", "alice", "ops", "dev"))
	assert.Equal(t, "\"alice\" is in staff\n", executeOK(t, url, "", "user", "leave", "alice", "ops"), "leaving a group one is not in")
	assert.Equal(t, "\"alice\" is in no group\n", executeOK(t, url, "", "user", "leave", "alice", "staff"))

	for args, msg := range map[string]string{
		"join alice ops nope": `no group "nope"`,
		"leave alice nope":    `no group "nope"`,
		"join carol ops":      `no user "carol"`,
		"leave carol ops":     `no user "carol"`,
		"groups carol":        `no user "carol"`,
		"join alice":          "missing the group names after the user name",
		"leave alice":         "missing the group names after the user name",
		"join":                "missing the user name",
		"groups":              "missing the user name",
		"groups alice bob":    "too many arguments: give only the user name",
	} {
		r := executeDB(t, url, "", append([]string{"user"}, strings.Fields(args)...)...)
		if assert.Error(t, r.err, args) {
			assert.Equal(t, msg, r.err.Error(), args)
			assert.Equal(t, "Error: "+msg+"\n", r.stderr, "%s: one line, no usage", args)
		}
		assert.Empty(t, r.stdout, args)
	}
	assert.Empty(t, mustGroups(t, s, alice), "a refused join changed nothing")
	for args, msg := range map[string]string{
		"add":        "missing the group name",
		"add a b":    "too many arguments: give only the group name",
		"delete":     "missing the group name",
		"list extra": `unknown command "extra" for "pg-session group list"`,
	} {
		r := executeDB(t, url, "", append([]string{"group"}, strings.Fields(args)...)...)
		if assert.Error(t, r.err, args) {
			assert.Equal(t, msg, r.err.Error(), args)
		}
	}
}

// A group's name comes from the database, where hand-written SQL could have
// put anything: it reaches the terminal without control characters.
func TestGroupNamesFromTheDatabaseArePrintedSafely(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	alice := addUser(t, s, "alice")
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	for _, sql := range []string{
		`ALTER TABLE pgsession.groups DROP CONSTRAINT groups_name_check`,
		`INSERT INTO pgsession.groups (name) VALUES (E'evil\x1b[2J')`,
		`INSERT INTO pgsession.user_groups (user_id, group_name) VALUES ('` + string(alice.ID) + `', E'evil\x1b[2J')`,
	} {
		_, err := pool.Exec(context.Background(), sql)
		require.NoError(t, err, sql)
	}

	for _, args := range [][]string{{"group", "list"}, {"user", "groups", "alice"}} {
		out := executeOK(t, url, "", args...)
		assert.Contains(t, out, "evil?[2J", args)
		assert.NotContains(t, out, "\x1b", args)
	}
}

func mustGroups(t *testing.T, s *store.Store, u *store.User) []string {
	t.Helper()
	groups, err := s.UserGroups(context.Background(), u.ID)
	require.NoError(t, err)
	return groups
}
