package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// GitHub's web flow, as its docs for OAuth apps describe it: "Authorizing
// OAuth apps" and "Troubleshooting OAuth app access token request errors".
// The web pages live at the root (https://github.com, or an Enterprise
// host), the REST API under /api/v3 (an Enterprise host's layout).

// githubStandIn is the GitHub mode's state beyond the saved one.
type githubStandIn struct {
	codes map[string]githubCode
}

// githubToken is what an access token grants.
type githubToken struct {
	Login  string   `json:"login"`
	Scopes []string `json:"scopes"`
}

// githubCode is an authorization not yet exchanged; GitHub's codes expire
// after ten minutes and serve once.
type githubCode struct {
	login       string
	redirectURI string
	scopes      []string
	challenge   string
	expires     time.Time
}

const docsTokenErrors = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"

func (s *server) setUpGitHub(mux *http.ServeMux) {
	s.github = &githubStandIn{codes: map[string]githubCode{}}
	s.handle(mux, "authorize", "GET /login/oauth/authorize", s.githubAuthorize)
	s.handle(mux, "authorize", "POST /login/oauth/authorize", s.githubAuthorize)
	s.handle(mux, "access_token", "POST /login/oauth/access_token", s.githubAccessToken)
	s.setUpGitHubAPI(mux)
}

func (s *server) githubAuthorize(w http.ResponseWriter, r *http.Request) {
	// GitHub has no page for an application it does not know.
	q, ok := s.fromClient(w, r, http.StatusNotFound)
	if !ok {
		return
	}
	if len(s.st.RedirectURIs) == 0 {
		errorPage(w, http.StatusBadRequest, "the application has no callback URL")
		return
	}
	state := q.Get("state")
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" {
		redirectURI = s.st.RedirectURIs[0]
	} else if !s.redirectAllowed(redirectURI) {
		// GitHub sends the browser to the registered callback instead.
		redirectBack(w, r, s.st.RedirectURIs[0], url.Values{"error": {"redirect_uri_mismatch"},
			"error_description": {"The redirect_uri MUST match the registered callback URL for this application."},
			"error_uri":         {"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch"},
			"state":             {state}})
		return
	}
	challenge := q.Get("code_challenge")
	switch {
	case challenge != "" && q.Get("code_challenge_method") != "S256":
		redirectBack(w, r, redirectURI, url.Values{"error": {"invalid_request"},
			"error_description": {"code_challenge_method must be S256"}, "state": {state}})
	case r.Method == http.MethodGet:
		s.githubLoginPage(w, http.StatusOK, q, "")
	case q.Get("action") == "deny":
		redirectBack(w, r, redirectURI, url.Values{"error": {"access_denied"},
			"error_description": {"The user has denied your application access."},
			"error_uri":         {"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied"},
			"state":             {state}})
	case q.Get("action") != "sign-in":
		s.githubLoginPage(w, http.StatusBadRequest, q, "Press Sign in or Deny.")
	default:
		user, ok := s.st.githubUser(q.Get("user"))
		if !ok {
			s.githubLoginPage(w, http.StatusBadRequest, q, fmt.Sprintf("No account %q.", q.Get("user")))
			return
		}
		code := randomString(20, "0123456789abcdef")
		s.github.codes[code] = githubCode{login: user.Login, redirectURI: redirectURI, scopes: githubScopes(q.Get("scope")),
			challenge: challenge, expires: time.Now().Add(10 * time.Minute)}
		redirectBack(w, r, redirectURI, url.Values{"code": {code}, "state": {state}})
	}
}

func (s *server) githubLoginPage(w http.ResponseWriter, status int, q url.Values, message string) {
	page := loginPage{Title: "Sign in to GitHub (the tests' stand-in)", Client: s.cfg.clientID,
		Action: "/login/oauth/authorize", Fields: formFields(q), Message: message}
	for _, u := range s.st.GitHubUsers {
		page.Users = append(page.Users, option{u.Login, u.Login})
	}
	renderLogin(w, status, page)
}

// githubAccessToken exchanges a code for a token. GitHub answers its
// errors with 200 OK too, in the format the Accept header asks for.
func (s *server) githubAccessToken(w http.ResponseWriter, r *http.Request) {
	params, err := githubParams(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if id, secret, ok := r.BasicAuth(); ok {
		params.Set("client_id", id)
		params.Set("client_secret", secret)
	}
	fail := func(code, description, anchor string) {
		githubTokenAnswer(w, r, [][2]string{{"error", code}, {"error_description", description}, {"error_uri", docsTokenErrors + anchor}})
	}
	if params.Get("client_id") != s.cfg.clientID ||
		subtle.ConstantTimeCompare([]byte(params.Get("client_secret")), []byte(s.cfg.clientSecret)) != 1 {
		fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.", "#incorrect-client-credentials")
		return
	}
	code, ok := s.github.codes[params.Get("code")]
	delete(s.github.codes, params.Get("code"))
	switch {
	case !ok || time.Now().After(code.expires):
		fail("bad_verification_code", "The code passed is incorrect or expired.", "#bad-verification-code")
	case params.Get("redirect_uri") != "" && params.Get("redirect_uri") != code.redirectURI:
		fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.", "#redirect-uri-mismatch2")
	case code.challenge != "" && s256(params.Get("code_verifier")) != code.challenge:
		fail("bad_verification_code", "The code_verifier does not match the code_challenge.", "#bad-verification-code")
	default:
		token := "gho_" + randomString(36, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
		s.st.Tokens[token] = githubToken{Login: code.login, Scopes: code.scopes}
		if err := s.save(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		githubTokenAnswer(w, r, [][2]string{{"access_token", token}, {"token_type", "bearer"}, {"scope", strings.Join(code.scopes, ",")}})
	}
}

// githubParams reads the token request's parameters from a form, the
// query, or a JSON body, all of which GitHub takes.
func githubParams(r *http.Request) (url.Values, error) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" {
		var body map[string]string
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
			return nil, err
		}
		params := r.URL.Query()
		for name, v := range body {
			params.Set(name, v)
		}
		return params, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	return r.Form, nil
}

// githubTokenAnswer writes pairs as JSON, XML or a form, as Accept asks;
// a form is GitHub's default.
func githubTokenAnswer(w http.ResponseWriter, r *http.Request, pairs [][2]string) {
	accept := r.Header.Get("Accept")
	switch {
	case strings.Contains(accept, "application/json"):
		body := map[string]string{}
		for _, p := range pairs {
			body[p[0]] = p[1]
		}
		writeJSON(w, http.StatusOK, body)
	case strings.Contains(accept, "application/xml"):
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		var b strings.Builder
		b.WriteString("<OAuth>")
		for _, p := range pairs {
			b.WriteString("<" + p[0] + ">")
			xml.EscapeText(&b, []byte(p[1]))
			b.WriteString("</" + p[0] + ">")
		}
		b.WriteString("</OAuth>")
		io.WriteString(w, b.String())
	default:
		form := url.Values{}
		for _, p := range pairs {
			form.Set(p[0], p[1])
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		io.WriteString(w, form.Encode())
	}
}

// githubScopes reads a scope parameter, which GitHub takes separated by
// spaces or commas.
func githubScopes(scope string) []string {
	scopes := []string{}
	for _, sc := range strings.FieldsFunc(scope, func(r rune) bool { return r == ' ' || r == ',' }) {
		if !contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return scopes
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
