package pgsession

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
)

// Signing in with GitHub, which speaks OAuth 2 without OpenID Connect,
// against the tests' stand-in for its web flow and REST API: who may come
// in is decided by organisation or team membership, and the link is by
// GitHub's numeric user id, so a renamed login still signs in and a login
// taken by someone else does not.

// gitHubUser is a GitHub account with one verified primary email, in orgs.
func gitHubUser(login string, id int64, orgs ...string) oidctest.GitHubUser {
	return oidctest.GitHubUser{Login: login, ID: id, Orgs: orgs,
		Emails: []oidctest.GitHubEmail{{Email: login + "@example.com", Primary: true, Verified: true}}}
}

func TestGitHubProviderAdmitsByOrganization(t *testing.T) {
	t.Parallel()
	g := oidctest.StartGitHub(t, oidctest.GitHubOptions{})
	g.AddUser(t, gitHubUser("octocat", 1001, "example-org"))
	g.AddUser(t, gitHubUser("stranger", 2002, "other-org"))
	db := newTestDB(t)
	s := githubSite(t, db, g, "allow_organizations example-org\n\tauto_create on")

	page := newBrowser(t).getPage(s.url("/login"))
	assertPageHas(t, page.body, `href="/login/with/gh?redirect=%2F"`, "the login page's GitHub button")
	assertPageHas(t, page.body, "Sign in with GitHub")

	// A member of the organisation signs in, and a user is made for them.
	b := newBrowser(t)
	resp := b.signInWith(s, "gh", "octocat", "/docs/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a member of example-org: %s", gist(resp.body))
	assert.Equal(t, "/docs/", resp.Header.Get("Location"))
	assert.Equal(t, "hello octocat", b.getPage(s.url("/docs/")).body)
	assertSignedInAs(t, b, s, "octocat", "provider")
	octocat := db.userNamed(t, "octocat")

	// Someone outside it is refused, and no user is made.
	other := newBrowser(t)
	resp = other.signInWith(s, "gh", "stranger", "/docs/")
	assertFlowPage(t, resp, "gh", http.StatusForbidden, "Not allowed")
	assertNotSignedIn(t, other, s)
	assert.Zero(t, db.count(t, "SELECT count(*) FROM pgsession.users WHERE username LIKE 'stranger%'"))

	// octocat renames themselves: the same GitHub user id signs in as the
	// same user.
	g.AddUser(t, gitHubUser("octo-renamed", 1001, "example-org"))
	renamed := newBrowser(t)
	resp = renamed.signInWith(s, "gh", "octo-renamed", "/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the renamed member: %s", gist(resp.body))
	assertSignedInAs(t, renamed, s, "octocat", "provider")
	assert.Equal(t, 1, db.count(t, "SELECT count(*) FROM pgsession.users"), "no second user for the renamed login")

	// Someone else takes the old login: they are a GitHub user of their
	// own, and get a user of their own, never octocat's.
	g.AddUser(t, gitHubUser("octocat", 3003, "example-org"))
	squatter := newBrowser(t)
	resp = squatter.signInWith(s, "gh", "octocat", "/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the new owner of the login, a member too: %s", gist(resp.body))
	status, name, _ := squatter.me(s)
	assert.Equal(t, http.StatusOK, status)
	assert.NotEqual(t, octocat.Username, name, "the old login does not sign in as its former owner's user")
	assert.Equal(t, 2, db.count(t, "SELECT count(*) FROM pgsession.users"))
}

func TestGitHubProviderAdmitsByTeam(t *testing.T) {
	t.Parallel()
	g := oidctest.StartGitHub(t, oidctest.GitHubOptions{})
	ops := gitHubUser("opsie", 4004, "example-org")
	ops.Teams = []oidctest.GitHubTeam{{Org: "example-org", Slug: "ops"}}
	g.AddUser(t, ops)
	dev := gitHubUser("devon", 5005, "example-org")
	dev.Teams = []oidctest.GitHubTeam{{Org: "example-org", Slug: "dev"}}
	g.AddUser(t, dev)
	g.AddUser(t, gitHubUser("member", 6006, "example-org"))
	db := newTestDB(t)
	s := githubSite(t, db, g, "allow_organizations example-org/ops\n\tauto_create on")

	b := newBrowser(t)
	resp := b.signInWith(s, "gh", "opsie", "/docs/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a member of example-org/ops: %s", gist(resp.body))
	assertSignedInAs(t, b, s, "opsie", "provider")

	for _, login := range []string{"devon", "member"} {
		b := newBrowser(t)
		resp := b.signInWith(s, "gh", login, "/docs/")
		assertFlowPage(t, resp, "gh", http.StatusForbidden, "Not allowed")
		assertNotSignedIn(t, b, s)
	}
	assert.Equal(t, 1, db.count(t, "SELECT count(*) FROM pgsession.users"), "only the team's member got a user")

	// An organisation and a team in one list: either admits.
	either := githubSite(t, newTestDB(t), g, "allow_organizations other-org example-org/dev\n\tauto_create on")
	b = newBrowser(t)
	resp = b.signInWith(either, "gh", "devon", "/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a member of example-org/dev: %s", gist(resp.body))
	assertSignedInAs(t, b, either, "devon", "provider")
	resp = newBrowser(t).signInWith(either, "gh", "opsie", "/")
	assertFlowPage(t, resp, "gh", http.StatusForbidden, "Not allowed")
}
