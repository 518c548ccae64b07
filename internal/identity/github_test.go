package identity

import (
	"cmp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
)

// The tests run internal/oidctest's GitHub stand-in, a process speaking
// GitHub's OAuth web flow and the REST API endpoints a sign-in uses, laid
// out as GitHub Enterprise Server is (github.com cannot be reached here).

var octo = oidctest.GitHubUser{
	Login: "octo",
	ID:    583231,
	Name:  "Octo Cat",
	Emails: []oidctest.GitHubEmail{
		{Email: "octo@old.example", Verified: true},
		{Email: "octo@example.com", Primary: true, Verified: true, Visibility: "private"},
	},
	Orgs:  []string{"acme", "Widgets"},
	Teams: []oidctest.GitHubTeam{{Org: "acme", Slug: "docs"}},
}

// startGitHub starts the stand-in, knowing octo, and a started Provider of
// it with cfg's options.
func startGitHub(t *testing.T, cfg Config) (*oidctest.GitHub, *Provider) {
	t.Helper()
	gh := oidctest.StartGitHub(t, oidctest.GitHubOptions{ClientID: "Iv1.docs", ClientSecret: "gh-secret-0123456789",
		RedirectURIs: []string{callback}})
	gh.AddUser(t, octo)
	return gh, githubClientOf(t, gh, cfg)
}

func githubClientOf(t *testing.T, gh *oidctest.GitHub, cfg Config) *Provider {
	t.Helper()
	cfg.Name, cfg.GitHub, cfg.GitHubURL, cfg.GitHubAPIURL = "test", true, gh.WebURL(), gh.APIURL()
	cfg.ClientID, cfg.ClientSecret = gh.ClientID(), cmp.Or(cfg.ClientSecret, gh.ClientSecret())
	p, err := New(cfg, fast)
	require.NoError(t, err)
	p.Start(t.Context())
	t.Cleanup(p.Stop)
	waitAvailable(t, p, true)
	return p
}

// A GitHub sign-in gives the numeric user id as the subject, the verified
// primary email (not the first, not the public one), the login to suggest
// and the memberships allow_organizations asks about.
func TestGitHubSignIn(t *testing.T) {
	gh, p := startGitHub(t, Config{AllowOrganizations: []string{"acme", "widgets", "acme/docs", "acme/ops", "other"}})
	id, err := signIn(t, p, "octo")
	require.NoError(t, err)
	assert.Equal(t, Identity{Provider: "test", Subject: "583231", Email: "octo@example.com", EmailVerified: true,
		UsernameHint: "octo", Name: "Octo Cat", Organizations: []string{"acme", "widgets", "acme/docs"}}, id)
	ok, why := p.Admits(id)
	assert.True(t, ok, why)
	counts := gh.Requests(t)
	assert.Equal(t, 3, counts["GET /orgs/{org}/members/{username}"], "one check of each organisation")
	assert.Equal(t, 2, counts["GET /orgs/{org}/teams/{team}/memberships/{username}"], "one check of each team")

	// A renamed account is the same subject; its old login is nobody's.
	renamed := octo
	renamed.Login = "octo-renamed"
	gh.AddUser(t, renamed)
	again, err := signIn(t, p, "octo-renamed")
	require.NoError(t, err)
	assert.Equal(t, "583231", again.Subject)
	assert.Equal(t, "octo-renamed", again.UsernameHint)
}

// GitHub's allow lists: a user in none of the organisations or teams is
// not admitted, and an email list needs the primary email verified.
func TestGitHubAllowLists(t *testing.T) {
	gh, orgs := startGitHub(t, Config{AllowOrganizations: []string{"acme/ops", "globex"}})
	id, err := signIn(t, orgs, "octo")
	require.NoError(t, err)
	assert.Empty(t, id.Organizations)
	ok, why := orgs.Admits(id)
	assert.False(t, ok)
	assert.Contains(t, why, "not a member of any of allow_organizations")

	gh.AddUser(t, oidctest.GitHubUser{Login: "mallory", ID: 666, Emails: []oidctest.GitHubEmail{
		{Email: "mallory@example.com", Primary: true, Verified: false},
		{Email: "mallory@gmail.com", Verified: true}}, Orgs: []string{"acme"}})
	domains := githubClientOf(t, gh, Config{AllowDomains: []string{"example.com"}, AllowOrganizations: []string{"acme"}})
	_, err = signIn(t, domains, "mallory")
	require.ErrorIs(t, err, ErrEmailNotVerified, "the primary email decides, and it is not verified")
	id, err = signIn(t, domains, "octo")
	require.NoError(t, err)
	ok, why = domains.Admits(id)
	assert.True(t, ok, why)

	lax := githubClientOf(t, gh, Config{})
	id, err = signIn(t, lax, "mallory")
	require.NoError(t, err, "without an email list an unverified email decides nothing, and is said so")
	assert.Equal(t, "mallory@example.com", id.Email)
	assert.False(t, id.EmailVerified)
	ok, _ = lax.Admits(id)
	assert.False(t, ok, "no allow list admits no one")
	assert.Nil(t, id.Organizations, "no membership is asked without allow_organizations")
}

// Without read:org GitHub shows no private membership: a member is then
// not found, which the scopes rule of the config prevents.
func TestGitHubMembershipNeedsReadOrg(t *testing.T) {
	_, p := startGitHub(t, Config{AllowOrganizations: []string{"acme"}, Scopes: []string{"read:user", "user:email"}})
	id, err := signIn(t, p, "octo")
	require.NoError(t, err)
	assert.Empty(t, id.Organizations)
}

// Denying, a code that is not GitHub's or used already, and a wrong
// client secret are told apart; none of their errors holds a secret.
func TestGitHubRefusals(t *testing.T) {
	gh, p := startGitHub(t, Config{})
	f := newFlow()
	back := oidctest.Deny(t, nil, p.AuthURL(f.state, f.nonce, f.verifier, callback))
	require.ErrorIs(t, p.CallbackError(back.Query()), ErrDenied)

	f = newFlow()
	code := authorize(t, p, f, "octo")
	_, err := p.Exchange(t.Context(), code, f.verifier, "", callback)
	require.NoError(t, err)
	_, err = p.Exchange(t.Context(), code, f.verifier, "", callback)
	require.ErrorIs(t, err, ErrInvalidCode, "a code is good once")
	checkNoSecret(t, err, code, f, gh.ClientSecret())
	_, err = p.Exchange(t.Context(), "made-up", f.verifier, "", callback)
	require.ErrorIs(t, err, ErrInvalidCode)

	wrong := githubClientOf(t, gh, Config{ClientSecret: "not-the-secret"})
	f = newFlow()
	code = authorize(t, wrong, f, "octo")
	_, err = wrong.Exchange(t.Context(), code, f.verifier, "", callback)
	require.ErrorIs(t, err, ErrMisconfigured)
	checkNoSecret(t, err, code, f, "not-the-secret")
}

// GitHub down makes the sign-in that meets it fail as unavailable, and
// Available says so until its API answers again.
func TestGitHubDown(t *testing.T) {
	gh, p := startGitHub(t, Config{})
	f := newFlow()
	code := authorize(t, p, f, "octo")
	gh.Stop()
	began := time.Now()
	_, err := p.Exchange(t.Context(), code, f.verifier, "", callback)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Less(t, time.Since(began), time.Second)
	ok, why := p.Available()
	assert.False(t, ok)
	// A connection kept from before the stop ends in EOF; a new one is refused.
	assert.Regexp(t, "connection refused|EOF", why)
	gh.Start()
	waitAvailable(t, p, true)
	_, err = signIn(t, p, "octo")
	require.NoError(t, err)
}
