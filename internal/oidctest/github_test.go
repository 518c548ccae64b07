package oidctest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
)

var octo = oidctest.GitHubUser{
	Login: "octo",
	Name:  "Octo Cat",
	Emails: []oidctest.GitHubEmail{
		{Email: "octo@example.com", Primary: true, Verified: true, Visibility: "private"},
		{Email: "octo@old.example", Verified: false},
	},
	Orgs:  []string{"acme", "Widgets"},
	Teams: []oidctest.GitHubTeam{{Org: "acme", Slug: "docs", Name: "Docs"}},
}

// githubClient is an OAuth client of the stand-in, as the plugin will be:
// x/oauth2 for the web flow, then the REST API with the token.
type githubClient struct {
	g      *oidctest.GitHub
	config oauth2.Config
}

func newGitHubClient(g *oidctest.GitHub, scopes ...string) *githubClient {
	return &githubClient{g: g, config: oauth2.Config{ClientID: g.ClientID(), ClientSecret: g.ClientSecret(), RedirectURL: callback,
		Endpoint: oauth2.Endpoint{AuthURL: g.WebURL() + "/login/oauth/authorize", TokenURL: g.WebURL() + "/login/oauth/access_token"},
		Scopes:   scopes}}
}

func (c *githubClient) signIn(t *testing.T, ctx context.Context, login string) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	back := oidctest.SignIn(t, nil, c.config.AuthCodeURL("gh-state", oauth2.S256ChallengeOption(verifier)), login)
	require.True(t, strings.HasPrefix(back.String(), callback+"?"), back.String())
	require.Equal(t, "gh-state", back.Query().Get("state"))
	tok, err := c.config.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	return tok
}

// get asks the API as GitHub's docs say to, and returns the answer with
// its body read.
func (c *githubClient) get(t *testing.T, hc *http.Client, token, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.g.APIURL()+path, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	return resp, body
}

func (c *githubClient) getJSON(t *testing.T, token, path string, out any) {
	t.Helper()
	resp, body := c.get(t, http.DefaultClient, token, path)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
	assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
	require.NoError(t, json.Unmarshal(body, out), "%s", body)
}

func TestTheGitHubStandInSpeaksItsDocumentedEndpoints(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	g := oidctest.StartGitHub(t, oidctest.GitHubOptions{RedirectURIs: []string{callback}})
	g.AddUser(t, octo)
	g.AddUser(t, oidctest.GitHubUser{Login: "bystander", Orgs: []string{"elsewhere"}})
	c := newGitHubClient(g, "read:user", "user:email", "read:org")
	tok := c.signIn(t, ctx, "octo")
	assert.Equal(t, "read:user,user:email,read:org", tok.Extra("scope"))
	token := tok.AccessToken
	assert.True(t, strings.HasPrefix(token, "gho_"), token)

	var user struct {
		Login string  `json:"login"`
		ID    int64   `json:"id"`
		Name  string  `json:"name"`
		Email *string `json:"email"`
	}
	c.getJSON(t, token, "/user", &user)
	assert.Equal(t, "octo", user.Login)
	assert.NotZero(t, user.ID)
	assert.Equal(t, "Octo Cat", user.Name)
	assert.Nil(t, user.Email, "no public email")

	var emails []struct {
		Email      string  `json:"email"`
		Primary    bool    `json:"primary"`
		Verified   bool    `json:"verified"`
		Visibility *string `json:"visibility"`
	}
	c.getJSON(t, token, "/user/emails", &emails)
	require.Len(t, emails, 2)
	assert.True(t, emails[0].Primary && emails[0].Verified)
	assert.Equal(t, "octo@example.com", emails[0].Email)
	assert.False(t, emails[1].Primary || emails[1].Verified)
	assert.Nil(t, emails[1].Visibility)

	var orgs []struct {
		Login string `json:"login"`
	}
	c.getJSON(t, token, "/user/orgs", &orgs)
	assert.Equal(t, []struct {
		Login string `json:"login"`
	}{{"acme"}, {"Widgets"}}, orgs)

	var teams []struct {
		Slug         string `json:"slug"`
		Organization struct {
			Login string `json:"login"`
		} `json:"organization"`
	}
	c.getJSON(t, token, "/user/teams", &teams)
	require.Len(t, teams, 1)
	assert.Equal(t, "docs", teams[0].Slug)
	assert.Equal(t, "acme", teams[0].Organization.Login)

	var membership struct {
		State string `json:"state"`
	}
	c.getJSON(t, token, "/orgs/ACME/teams/docs/memberships/octo", &membership)
	assert.Equal(t, "active", membership.State)

	for path, status := range map[string]int{
		"/orgs/acme/members/octo":                http.StatusNoContent,
		"/orgs/widgets/members/octo":             http.StatusNoContent,
		"/orgs/acme/members/bystander":           http.StatusNotFound,
		"/orgs/elsewhere/members/octo":           http.StatusNotFound, // through the public check
		"/orgs/acme/teams/ops/memberships/octo":  http.StatusNotFound,
		"/orgs/acme/teams/docs/memberships/nope": http.StatusNotFound,
		"/repos/acme/site":                       http.StatusNotFound,
	} {
		resp, body := c.get(t, http.DefaultClient, token, path)
		assert.Equal(t, status, resp.StatusCode, "%s: %s", path, body)
	}
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := c.get(t, noRedirects, token, "/orgs/elsewhere/members/octo")
	assert.Equal(t, http.StatusFound, resp.StatusCode, "a requester outside the organisation is sent to the public check")
	assert.Equal(t, g.APIURL()+"/orgs/elsewhere/public_members/octo", resp.Header.Get("Location"))

	// A restarted GitHub still knows its users and tokens.
	g.Stop()
	g.Start()
	c.getJSON(t, token, "/user", &user)
	assert.Equal(t, "octo", user.Login)
	assert.Equal(t, 1, g.Requests(t)["GET /user"])
}

func TestTheGitHubAPIChecksTokensAndScopes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	g := oidctest.StartGitHub(t, oidctest.GitHubOptions{RedirectURIs: []string{callback}})
	g.AddUser(t, octo)
	c := newGitHubClient(g, "read:user")
	token := c.signIn(t, ctx, "octo").AccessToken

	resp, body := c.get(t, http.DefaultClient, token, "/user/emails")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "%s", body)
	assert.Equal(t, "user, user:email", resp.Header.Get("X-Accepted-OAuth-Scopes"))
	assert.Equal(t, "read:user", resp.Header.Get("X-OAuth-Scopes"))
	resp, _ = c.get(t, http.DefaultClient, token, "/user/orgs")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = c.get(t, http.DefaultClient, token, "/orgs/acme/members/octo")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "without read:org a private membership is not seen")

	resp, body = c.get(t, http.DefaultClient, "gho_notatoken", "/user")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, string(body), "Bad credentials")
	resp, _ = c.get(t, http.DefaultClient, "", "/user")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	req, err := http.NewRequest(http.MethodGet, g.APIURL()+"/user", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "token "+token)
	req.Header.Set("User-Agent", "")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "GitHub refuses a request without a User-Agent")

	// The user scope covers the emails and the organisations.
	token = newGitHubClient(g, "user").signIn(t, ctx, "octo").AccessToken
	var emails []json.RawMessage
	c.getJSON(t, token, "/user/emails", &emails)
	assert.Len(t, emails, 2)
}

func TestTheGitHubListsPage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	g := oidctest.StartGitHub(t, oidctest.GitHubOptions{RedirectURIs: []string{callback}})
	g.AddUser(t, oidctest.GitHubUser{Login: "joiner", Orgs: []string{"a", "b", "c"}})
	c := newGitHubClient(g, "read:org")
	token := c.signIn(t, ctx, "joiner").AccessToken

	resp, body := c.get(t, http.DefaultClient, token, "/user/orgs?per_page=2")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `["a","b"]`, logins(t, body))
	next := g.APIURL() + "/user/orgs?per_page=2&page=2"
	assert.Contains(t, resp.Header.Get("Link"), "<"+next+`>; rel="next"`)
	resp, body = c.get(t, http.DefaultClient, token, "/user/orgs?per_page=2&page=2")
	assert.JSONEq(t, `["c"]`, logins(t, body))
	assert.Contains(t, resp.Header.Get("Link"), `rel="prev"`)
	assert.NotContains(t, resp.Header.Get("Link"), `rel="next"`)
}

func logins(t *testing.T, body []byte) string {
	t.Helper()
	var list []struct {
		Login string `json:"login"`
	}
	require.NoError(t, json.Unmarshal(body, &list))
	var names []string
	for _, o := range list {
		names = append(names, o.Login)
	}
	out, _ := json.Marshal(names)
	return string(out)
}

func TestTheGitHubWebFlowRefuses(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	g := oidctest.StartGitHub(t, oidctest.GitHubOptions{RedirectURIs: []string{callback}})
	g.AddUser(t, octo)
	c := newGitHubClient(g, "user:email")

	back := oidctest.Deny(t, nil, c.config.AuthCodeURL("st"))
	assert.Equal(t, "access_denied", back.Query().Get("error"))
	assert.Equal(t, "st", back.Query().Get("state"))

	cfg := c.config
	cfg.RedirectURL = "http://127.0.0.1:9/not/registered"
	back = oidctest.SignIn(t, nil, cfg.AuthCodeURL("st"), "octo")
	assert.True(t, strings.HasPrefix(back.String(), callback+"?"), "GitHub sends the browser to the registered callback: %s", back)
	assert.Equal(t, "redirect_uri_mismatch", back.Query().Get("error"))

	verifier := oauth2.GenerateVerifier()
	back = oidctest.SignIn(t, nil, c.config.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "octo")
	code := back.Query().Get("code")
	_, err := c.config.Exchange(ctx, code, oauth2.VerifierOption("not-the-verifier"))
	var refused *oauth2.RetrieveError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, "bad_verification_code", refused.ErrorCode)
	_, err = c.config.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	require.ErrorAs(t, err, &refused, "a code serves once")
	assert.Equal(t, "bad_verification_code", refused.ErrorCode)

	// GitHub answers a form unless asked for JSON, and takes a JSON body.
	back = oidctest.SignIn(t, nil, c.config.AuthCodeURL("st"), "octo")
	resp, err := http.PostForm(g.WebURL()+"/login/oauth/access_token", url.Values{"client_id": {g.ClientID()},
		"client_secret": {g.ClientSecret()}, "code": {back.Query().Get("code")}})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form, err := url.ParseQuery(string(body))
	require.NoError(t, err, "%s", body)
	assert.True(t, strings.HasPrefix(form.Get("access_token"), "gho_"), "%s", body)
	assert.Equal(t, "user:email", form.Get("scope"))

	back = oidctest.SignIn(t, nil, c.config.AuthCodeURL("st"), "octo")
	payload, _ := json.Marshal(map[string]string{"client_id": g.ClientID(), "client_secret": "wrong", "code": back.Query().Get("code")})
	req, err := http.NewRequest(http.MethodPost, g.WebURL()+"/login/oauth/access_token", strings.NewReader(string(payload)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	var answer map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "GitHub's errors come with 200 OK")
	assert.Equal(t, "incorrect_client_credentials", answer["error"])
}
