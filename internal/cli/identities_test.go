package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

func google(subject, email string) store.Identity {
	return store.Identity{Provider: "google", Subject: subject, Email: email}
}

// An admin allows a first sign-in by its verified email, sees it listed,
// and the sign-in it was meant for links the account.
func TestIdentityAllowAndList(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice := addUser(t, s, "alice")

	r := executeDB(t, url, "", "identity", "list", "alice")
	require.NoError(t, r.err)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "no identities for \"alice\"\n", r.stderr)

	out := executeOK(t, url, "", "identity", "allow", "ALICE", "google", "Alice@Example.com")
	assert.Regexp(t, `^allowed the first sign-in with google whose verified email is alice@example.com to link to "alice", `+
		`once, until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n$`, out)
	invitations, err := s.IdentityInvitations(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, invitations, 1)
	assert.WithinDuration(t, time.Now().Add(7*24*time.Hour), invitations[0].ExpiresAt, time.Minute, "a week unless told")

	out = executeOK(t, url, "", "identity", "allow", "alice", "github", "alice@example.com", "--expires", "never")
	assert.Contains(t, out, "with no expiry")
	executeOK(t, url, "", "identity", "allow", "alice", "gitlab", "alice@example.com", "--expires", "12h")
	invitations, err = s.IdentityInvitations(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, invitations, 3)
	assert.Equal(t, "gitlab", invitations[1].Provider, "by provider: github, gitlab, google")
	assert.WithinDuration(t, time.Now().Add(12*time.Hour), invitations[1].ExpiresAt, time.Minute)

	_, err = s.TakeIdentityInvitation(ctx, google("10769150350006150715", "ALICE@example.com"))
	require.NoError(t, err, "the sign-in it was meant for")
	rows := table(executeOK(t, url, "", "identity", "list", "alice"))
	require.Len(t, rows, 4)
	assert.Equal(t, []string{"PROVIDER", "STATUS", "SUBJECT", "EMAIL", "SINCE", "LAST USED", "EXPIRES"}, rows[0])
	assert.Equal(t, []string{"google", "linked", "10769150350006150715", "ALICE@example.com"}, rows[1][:4],
		"the email as the provider said it")
	assert.Equal(t, "-", rows[1][6])
	assert.Equal(t, []string{"github", "allowed", "-", "alice@example.com"}, rows[2][:4])
	assert.Equal(t, []string{"-", "never"}, rows[2][5:])
	assert.Equal(t, "gitlab", rows[3][0])

	r = executeDB(t, url, "", "identity", "allow", "alice", "google", "alice@example.com")
	require.Error(t, r.err)
	assert.Equal(t, `"alice" has a google identity already: see 'identity list alice'`, r.err.Error())
}

func TestIdentityAllowRefusals(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	addUser(t, s, "alice")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"alice"}, "missing the provider after the user name"},
		{[]string{"alice", "google"}, "missing the email after the provider"},
		{[]string{"alice", "google", "a@example.com", "b@example.com"}, "too many arguments: give the user name, the provider, then the email"},
		{[]string{"alice", "Google", "a@example.com"}, `"Google" is not a provider's name: a provider's name is 1 to 32 characters, each a lowercase letter a-z, a digit or '-'`},
		{[]string{"alice", "google", "not an email"}, "an email is a name, @ and a domain, without spaces, at most 320 bytes"},
		{[]string{"alice", "google", "a@example.com", "--expires", "0d"}, "invalid value for --expires: give a positive duration such as 7d, 12h or 90m, or never"},
		{[]string{"alice", "google", "a@example.com", "--expires", "forever"}, "invalid value for --expires: give a positive duration such as 7d, 12h or 90m, or never"},
		{[]string{"nobody", "google", "a@example.com"}, `no user "nobody"`},
	} {
		r := executeDB(t, url, "", append([]string{"identity", "allow"}, tc.args...)...)
		require.Error(t, r.err, "%v", tc.args)
		assert.Equal(t, tc.want, r.err.Error(), "%v", tc.args)
		assert.Empty(t, r.stdout)
	}
	assert.Empty(t, must(s.IdentityInvitations(context.Background(), must(s.GetUserByName(context.Background(), "alice")).ID)))
}

// Unlinking takes the identity, the groups its claim gave and what was
// allowed to link the provider, and is refused when it would leave the
// user no way to sign in.
func TestIdentityUnlink(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice := addUser(t, s, "alice")
	_, err := s.CreateGroup(ctx, "ops")
	require.NoError(t, err)
	require.NoError(t, s.LinkIdentity(ctx, alice.ID, google("sub-a", "")))
	require.NoError(t, s.SyncProviderGroups(ctx, alice.ID, "google", []string{"ops"}))
	_, err = s.AllowIdentity(ctx, store.IdentityInvitation{Provider: "github", Email: "alice@example.com", UserID: alice.ID})
	require.NoError(t, err)

	assert.Equal(t, "unlinked google from \"alice\"\n", executeOK(t, url, "", "identity", "unlink", "alice", "google"))
	assert.Empty(t, must(s.Identities(ctx, alice.ID)))
	assert.Empty(t, must(s.UserGroups(ctx, alice.ID)), "the claim's group goes with the provider")
	assert.Equal(t, "withdrew 1 permission to link github to \"alice\", which had none linked\n",
		executeOK(t, url, "", "identity", "unlink", "alice", "github"))
	r := executeDB(t, url, "", "identity", "unlink", "alice", "github")
	require.Error(t, r.err)
	assert.Equal(t, `"alice" has no github identity: see 'identity list alice'`, r.err.Error())

	carol, err := s.CreateUserFromIdentity(ctx, "carol", google("sub-c", "carol@example.com"), nil)
	require.NoError(t, err)
	r = executeDB(t, url, "", "identity", "list", "carol")
	require.NoError(t, r.err)
	assert.Equal(t, "\"carol\" has no password\n", r.stderr)
	r = executeDB(t, url, "", "identity", "unlink", "carol", "google")
	require.Error(t, r.err)
	assert.Equal(t, `unlinking google would leave "carol" no way to sign in: give them a password first ('user passwd carol')`,
		r.err.Error())
	assert.Len(t, must(s.Identities(ctx, carol.ID)), 1, "refused, kept")

	executeOK(t, url, testPassword+"\n", "user", "passwd", "carol", "--password-stdin")
	_, err = s.AllowIdentity(ctx, store.IdentityInvitation{Provider: "google", Email: "carol@work.example", UserID: alice.ID})
	require.NoError(t, err, "for alice, not carol")
	_, err = s.AllowIdentity(ctx, store.IdentityInvitation{Provider: "github", Email: "carol@example.com", UserID: carol.ID})
	require.NoError(t, err)
	assert.Equal(t, "unlinked google from \"carol\"\n", executeOK(t, url, "", "identity", "unlink", "carol", "google"),
		"her password is left; her github permission is another provider's")
	assert.Len(t, must(s.IdentityInvitations(ctx, alice.ID)), 1, "another user's permission stays")

	for args, want := range map[string]string{
		"carol":              "missing the provider after the user name",
		"carol google extra": "too many arguments: give the user name, then the provider",
		"carol GitHub":       `"GitHub" is not a provider's name: a provider's name is 1 to 32 characters, each a lowercase letter a-z, a digit or '-'`,
		"nobody google":      `no user "nobody"`,
	} {
		r := executeDB(t, url, "", append([]string{"identity", "unlink"}, strings.Fields(args)...)...)
		require.Error(t, r.err, args)
		assert.Equal(t, want, r.err.Error(), args)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
