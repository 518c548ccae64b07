package main

import (
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"

	"github.com/pgsession/caddy-pgsession/internal/oidctest/control"
)

// The REST API endpoints a sign-in uses, as GitHub's REST docs describe
// them, under /api/v3 as on GitHub Enterprise Server: the token's user,
// its emails, its organisations and teams, and membership checks.

const apiPrefix = "/api/v3"

// apiRoute is an endpoint and the OAuth scopes it accepts; without one of
// them GitHub answers refusal (404 for the emails, 403 for the lists), or
// for the membership checks sees no private membership.
type apiRoute struct {
	accepted []string
	refusal  int
	serve    func(w http.ResponseWriter, r *http.Request, tok githubToken, u control.GitHubUser)
}

func (s *server) setUpGitHubAPI(mux *http.ServeMux) {
	routes := map[string]apiRoute{
		"/user":                                 {nil, 0, s.apiUser},
		"/user/emails":                          {[]string{"user", "user:email"}, http.StatusNotFound, s.apiEmails},
		"/user/orgs":                            {[]string{"user", "read:org"}, http.StatusForbidden, s.apiOrgs},
		"/user/teams":                           {[]string{"user", "repo", "read:org"}, http.StatusForbidden, s.apiTeams},
		"/orgs/{org}/members/{username}":        {[]string{"read:org"}, 0, s.apiOrgMember},
		"/orgs/{org}/public_members/{username}": {nil, 0, apiNoPublicMember},
		"/orgs/{org}/teams/{team}/memberships/{username}": {[]string{"read:org"}, 0, s.apiTeamMembership},
	}
	for path, route := range routes {
		s.handle(mux, "GET "+path, "GET "+apiPrefix+path, s.githubAPI(route))
	}
	s.handle(mux, "api not found", apiPrefix+"/", func(w http.ResponseWriter, _ *http.Request) {
		apiError(w, http.StatusNotFound, "Not Found")
	})
}

// githubAPI checks what GitHub checks before any endpoint: a User-Agent,
// then the token, and answers with the headers that name the token's
// scopes and the ones the endpoint accepts.
func (s *server) githubAPI(route apiRoute) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") == "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintln(w, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.")
			return
		}
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if token == "" || !strings.EqualFold(scheme, "bearer") && !strings.EqualFold(scheme, "token") {
			apiError(w, http.StatusUnauthorized, "Requires authentication")
			return
		}
		tok, ok := s.st.Tokens[token]
		user, found := s.st.githubUser(tok.Login)
		if !ok || !found {
			apiError(w, http.StatusUnauthorized, "Bad credentials")
			return
		}
		h := w.Header()
		h.Set("X-OAuth-Scopes", strings.Join(tok.Scopes, ", "))
		h.Set("X-Accepted-OAuth-Scopes", strings.Join(route.accepted, ", "))
		h.Set("X-GitHub-Media-Type", "github.v3; format=json")
		h.Set("X-GitHub-Api-Version-Selected", "2022-11-28")
		if route.refusal != 0 && !hasScope(tok, route.accepted...) {
			apiError(w, route.refusal, map[int]string{http.StatusNotFound: "Not Found",
				http.StatusForbidden: "Resource not accessible by this token's scopes"}[route.refusal])
			return
		}
		route.serve(w, r, tok, user)
	}
}

// hasScope reports whether the token has one of wanted, counting the
// scopes that GitHub's broader scopes include.
func hasScope(tok githubToken, wanted ...string) bool {
	implied := map[string][]string{
		"user":      {"read:user", "user:email", "user:follow"},
		"admin:org": {"write:org", "read:org"},
		"write:org": {"read:org"},
	}
	for _, have := range tok.Scopes {
		if contains(wanted, have) {
			return true
		}
		for _, sub := range implied[have] {
			if contains(wanted, sub) {
				return true
			}
		}
	}
	return false
}

func (s *server) apiUser(w http.ResponseWriter, _ *http.Request, _ githubToken, u control.GitHubUser) {
	writeJSON(w, http.StatusOK, map[string]any{
		"login":      u.Login,
		"id":         u.ID,
		"node_id":    nodeID("User", u.ID),
		"avatar_url": s.base + "/avatars/" + u.Login,
		"url":        s.base + apiPrefix + "/users/" + u.Login,
		"html_url":   s.base + "/" + u.Login,
		"type":       "User",
		"site_admin": false,
		"name":       nullable(u.Name),
		"email":      nullable(u.Email),
		"created_at": "2020-01-02T03:04:05Z",
	})
}

func (s *server) apiEmails(w http.ResponseWriter, r *http.Request, _ githubToken, u control.GitHubUser) {
	emails := []map[string]any{}
	for _, e := range u.Emails {
		emails = append(emails, map[string]any{"email": e.Email, "primary": e.Primary, "verified": e.Verified,
			"visibility": nullable(e.Visibility)})
	}
	writeJSON(w, http.StatusOK, paginate(s, w, r, emails))
}

func (s *server) apiOrgs(w http.ResponseWriter, r *http.Request, _ githubToken, u control.GitHubUser) {
	orgs := []map[string]any{}
	for _, org := range u.Orgs {
		orgs = append(orgs, s.org(org))
	}
	writeJSON(w, http.StatusOK, paginate(s, w, r, orgs))
}

func (s *server) apiTeams(w http.ResponseWriter, r *http.Request, _ githubToken, u control.GitHubUser) {
	teams := []map[string]any{}
	for _, t := range u.Teams {
		name := t.Name
		if name == "" {
			name = t.Slug
		}
		id := stableID(t.Org + "/" + t.Slug)
		teams = append(teams, map[string]any{
			"id": id, "node_id": nodeID("Team", id), "name": name, "slug": t.Slug,
			"url":         s.base + apiPrefix + "/teams/" + strconv.FormatInt(id, 10),
			"html_url":    s.base + "/orgs/" + t.Org + "/teams/" + t.Slug,
			"description": nil, "privacy": "closed", "permission": "pull", "parent": nil,
			"organization": s.org(t.Org),
		})
	}
	writeJSON(w, http.StatusOK, paginate(s, w, r, teams))
}

// apiOrgMember is "Check organization membership for a user": 204 for a
// member, 404 for anyone else, when the requester is a member who may see
// private memberships (read:org); otherwise GitHub sends the requester to
// the public membership check.
func (s *server) apiOrgMember(w http.ResponseWriter, r *http.Request, tok githubToken, u control.GitHubUser) {
	org, username := r.PathValue("org"), r.PathValue("username")
	if !contains(u.Orgs, org) || !hasScope(tok, "read:org") {
		http.Redirect(w, r, s.base+apiPrefix+"/orgs/"+org+"/public_members/"+username, http.StatusFound)
		return
	}
	if target, ok := s.st.githubUser(username); ok && contains(target.Orgs, org) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	apiError(w, http.StatusNotFound, "User does not exist or is not a member of the organization")
}

// apiNoPublicMember answers the public membership check: memberships here
// are private, as GitHub's are until a member makes theirs public.
func apiNoPublicMember(w http.ResponseWriter, _ *http.Request, _ githubToken, _ control.GitHubUser) {
	w.WriteHeader(http.StatusNotFound)
}

// apiTeamMembership is "Get team membership for a user", seen by a member
// of the team's organisation.
func (s *server) apiTeamMembership(w http.ResponseWriter, r *http.Request, tok githubToken, u control.GitHubUser) {
	org, team, username := r.PathValue("org"), r.PathValue("team"), r.PathValue("username")
	if contains(u.Orgs, org) && hasScope(tok, "read:org") {
		if target, ok := s.st.githubUser(username); ok && inTeam(target, org, team) {
			writeJSON(w, http.StatusOK, map[string]string{
				"url":   s.base + apiPrefix + "/orgs/" + org + "/teams/" + team + "/memberships/" + target.Login,
				"role":  "member",
				"state": "active",
			})
			return
		}
	}
	apiError(w, http.StatusNotFound, "Not Found")
}

func inTeam(u control.GitHubUser, org, team string) bool {
	for _, t := range u.Teams {
		if strings.EqualFold(t.Org, org) && strings.EqualFold(t.Slug, team) {
			return true
		}
	}
	return false
}

func (s *server) org(login string) map[string]any {
	id := stableID(strings.ToLower(login))
	return map[string]any{
		"login": login, "id": id, "node_id": nodeID("Organization", id),
		"url":         s.base + apiPrefix + "/orgs/" + login,
		"avatar_url":  s.base + "/avatars/" + login,
		"description": nil,
	}
}

// paginate cuts items to the page asked for (per_page, at most 100, 30 by
// default; page from 1) and links the other pages, as GitHub's lists do.
func paginate[T any](s *server, w http.ResponseWriter, r *http.Request, items []T) []T {
	perPage, page := 30, 1
	if n, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && n > 0 {
		perPage = min(n, 100)
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && n > 0 {
		page = n
	}
	last := max(1, (len(items)+perPage-1)/perPage)
	link := func(p int, rel string) string {
		return fmt.Sprintf(`<%s%s?per_page=%d&page=%d>; rel="%s"`, s.base, r.URL.Path, perPage, p, rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(page-1, "prev"), link(1, "first"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	from := min(len(items), (page-1)*perPage)
	return items[from:min(len(items), from+perPage)]
}

func apiError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{
		"message":           message,
		"documentation_url": "https://docs.github.com/rest",
		"status":            strconv.Itoa(status),
	})
}

// stableID makes an id for a name that is the same in every run.
func stableID(name string) int64 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int64(h.Sum32()%90_000_000) + 10_000_000
}

func nodeID(kind string, id int64) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s%d", kind, id))
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
