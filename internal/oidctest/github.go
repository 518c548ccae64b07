package oidctest

import (
	"testing"

	"github.com/pgsession/caddy-pgsession/internal/oidctest/control"
)

// GitHubOptions configure the GitHub stand-in's one OAuth app.
type GitHubOptions struct {
	// ClientID and ClientSecret are the app's; "test-client" and
	// "test-secret" when empty.
	ClientID, ClientSecret string
	// RedirectURIs are the app's callback URLs, matched exactly (GitHub
	// also takes a path below one); the first is the one used when a
	// request names none, or names another (with
	// error=redirect_uri_mismatch).
	RedirectURIs []string
}

// GitHubUser is a GitHub account, with its emails, organisations and
// teams; see control.GitHubUser.
type GitHubUser = control.GitHubUser

// GitHubEmail is an address of GET /user/emails.
type GitHubEmail = control.GitHubEmail

// GitHubTeam is a team a GitHubUser is in.
type GitHubTeam = control.GitHubTeam

// GitHub is a running stand-in for GitHub, laid out as GitHub Enterprise
// Server is: the web flow at WebURL()/login/oauth/authorize (a login page)
// and /login/oauth/access_token, the REST API under APIURL(). A client
// that takes a web and an API base URL, as it must for github.com
// (https://github.com, https://api.github.com), works with it unchanged.
//
// The API checks what GitHub checks: a User-Agent header, then the token
// (Authorization: Bearer or token), and the token's scopes: /user/emails
// needs user or user:email (404 without), /user/orgs user or read:org and
// /user/teams user, repo or read:org (403 without); the membership checks
// see private memberships only with read:org. Lists page with per_page
// and page and a Link header.
type GitHub struct {
	server
}

// StartGitHub starts a GitHub stand-in for the test, stopped when the test
// ends.
func StartGitHub(tb testing.TB, opts GitHubOptions) *GitHub {
	tb.Helper()
	s := newServer(opts.ClientID, opts.ClientSecret)
	s.proc = startProcess(tb, s.args("github", opts.RedirectURIs))
	return &GitHub{s}
}

// WebURL is the base of GitHub's web pages, as https://github.com is.
func (g *GitHub) WebURL() string { return g.proc.url }

// APIURL is the base of the REST API, as https://api.github.com is.
func (g *GitHub) APIURL() string { return g.proc.url + "/api/v3" }

// AddUser adds an account, or replaces the one with the same login.
func (g *GitHub) AddUser(tb testing.TB, u GitHubUser) {
	tb.Helper()
	g.control(tb, "/control/users", u, nil)
}
