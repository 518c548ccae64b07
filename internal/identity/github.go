package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// GitHub speaks OAuth 2 without OpenID Connect: there is no ID token, so
// who the user is comes from its REST API, called with the user's token
// (https://docs.github.com/en/rest): /user, /user/emails, and the
// memberships allow_organizations asks about.

func (p *Provider) githubEndpoint() oauth2.Endpoint {
	web := p.cfg.githubURL()
	// GitHub takes the client's credentials in the form.
	return oauth2.Endpoint{AuthURL: web + "/login/oauth/authorize", TokenURL: web + "/login/oauth/access_token",
		AuthStyle: oauth2.AuthStyleInParams}
}

// probeGitHub asks the API's root: any answer but a server error means
// GitHub is there (an unauthenticated call may well be refused).
func (p *Provider) probeGitHub(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.githubAPIURL()+"/", nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := p.api.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= http.StatusInternalServerError {
		return fmt.Errorf("GitHub's API at %s answered %s", p.cfg.githubAPIURL(), resp.Status)
	}
	return nil
}

// userAgent names the app to GitHub, which refuses a request without one.
const userAgent = "caddy-pgsession"

type githubUser struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
	Name  string `json:"name"`
}

type githubEmail struct {
	Email    string `json:"email"`
	Primary  bool   `json:"primary"`
	Verified bool   `json:"verified"`
}

// exchangeGitHub trades the code for a token and asks the API who it is.
// The subject is the numeric user id, never the login: a user can rename
// themselves, and another can then take the old login.
func (p *Provider) exchangeGitHub(ctx context.Context, call secrets, redirectURI string) (Identity, error) {
	token, err := p.exchangeCode(ctx, p.oauth2Config(p.githubEndpoint(), redirectURI), call)
	if err != nil {
		return Identity{}, err
	}
	call.others = append(call.others, token.AccessToken)
	api := githubAPI{p: p, token: token.AccessToken, call: call}
	var user githubUser
	if err := api.get(ctx, "/user", &user); err != nil {
		return Identity{}, err
	}
	if user.ID <= 0 || user.Login == "" {
		return Identity{}, p.fail(ErrInvalidToken, "GitHub's /user has no id or login")
	}
	var emails []githubEmail
	// The first page of 100 holds every address but a collector's.
	if err := api.get(ctx, "/user/emails?per_page=100", &emails); err != nil {
		return Identity{}, err
	}
	id := Identity{Provider: p.cfg.Name, Subject: strconv.FormatInt(user.ID, 10), UsernameHint: user.Login, Name: user.Name}
	for _, e := range emails {
		if e.Primary {
			id.Email, id.EmailVerified = e.Email, e.Verified
		}
	}
	for _, entry := range p.cfg.AllowOrganizations {
		member, err := api.member(ctx, user.Login, entry)
		if err != nil {
			return Identity{}, err
		}
		if member {
			id.Organizations = append(id.Organizations, entry)
		}
	}
	return id, p.emailRule(id)
}

// githubAPI calls GitHub's API with one user's token.
type githubAPI struct {
	p     *Provider
	token string
	call  secrets
}

// member says whether login is an active member of entry, an organisation
// ("org") or a team ("org/team"). An organisation answers 204 for a member,
// and 404, or a redirect to its public members, for anyone else; a team
// answers with the membership, whose state is pending until accepted, or
// 404. A 403 is an organisation that keeps its members from this app (its
// OAuth app access restrictions): no proof of membership either.
func (api githubAPI) member(ctx context.Context, login, entry string) (bool, error) {
	org, team, isTeam := strings.Cut(entry, "/")
	path := "/orgs/" + url.PathEscape(org) + "/members/" + url.PathEscape(login)
	if isTeam {
		path = "/orgs/" + url.PathEscape(org) + "/teams/" + url.PathEscape(team) + "/memberships/" + url.PathEscape(login)
	}
	status, body, err := api.do(ctx, path)
	switch {
	case err != nil:
		return false, err
	case status == http.StatusNotFound || status == http.StatusForbidden || status == http.StatusFound:
		return false, nil
	case !isTeam && status == http.StatusNoContent:
		return true, nil
	case isTeam && status == http.StatusOK:
		var membership struct {
			State string `json:"state"`
		}
		return json.Unmarshal(body, &membership) == nil && membership.State == "active", nil
	}
	return false, api.p.fail(ErrMisconfigured, "GitHub's API answered %d to %s", status, path)
}

// get reads the JSON of a 200 from path into v; any other answer means the
// token lacks a scope the config's scopes should have given it.
func (api githubAPI) get(ctx context.Context, path string, v any) error {
	status, body, err := api.do(ctx, path)
	switch {
	case err != nil:
		return err
	case status != http.StatusOK:
		return api.p.fail(ErrMisconfigured, "GitHub's API answered %d to %s (do the scopes %s suffice?)",
			status, path, strings.Join(api.p.cfg.AskedScopes(), " "))
	case json.Unmarshal(body, v) != nil:
		return api.p.fail(ErrInvalidToken, "GitHub's API answered %s with no JSON of the kind it documents", path)
	}
	return nil
}

// do calls path. No answer or a server error makes GitHub unavailable, and
// a 401 is the token refused; any other status is the caller's to read.
func (api githubAPI) do(ctx context.Context, path string) (int, []byte, error) {
	p := api.p
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.githubAPIURL()+path, nil)
	if err != nil {
		return 0, nil, p.fail(ErrMisconfigured, "GitHub's API: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+api.token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", userAgent)
	resp, err := p.api.Do(req)
	if err != nil {
		return 0, nil, p.unreachable("GitHub's API: " + api.call.redact(err.Error()))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return 0, nil, p.unreachable("GitHub's API: reading " + path + ": " + api.call.redact(err.Error()))
	case resp.StatusCode >= http.StatusInternalServerError:
		return 0, nil, p.unreachable("GitHub's API answered " + resp.Status + " to " + path)
	case resp.StatusCode == http.StatusUnauthorized:
		return 0, nil, p.fail(ErrInvalidToken, "GitHub's API refused the token at %s", path)
	}
	return resp.StatusCode, body, nil
}
