package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/pgsession/caddy-pgsession/internal/oidctest/control"
)

// oidcProvider is the OpenID provider: mockoidc checks the client, the
// code, the PKCE verifier and signs the tokens; in front of it this
// program adds what mockoidc leaves to its users: a login page instead of
// signing in at once, registered redirect URIs, the issuer at the root of
// the address, a key set of more than one key, and knobs that spoil the
// next ID token.
type oidcProvider struct {
	m *mockoidc.MockOIDC
	// keys are st.Keys opened; keys[0] is m.Keypair.
	keys []*mockoidc.Keypair
	// redirects is the redirect URI of each code not yet exchanged, which
	// the token request must repeat (RFC 6749 §4.1.3); mockoidc does not
	// check it.
	redirects map[string]string
	// otherKey signs the tokens of the sign_with_other_key knob; it is
	// never published.
	otherKey *mockoidc.Keypair
}

func (s *server) setUpOIDC(mux *http.ServeMux, addr string) error {
	if len(s.st.Keys) == 0 {
		_, stored, err := newKey()
		if err != nil {
			return err
		}
		s.st.Keys = []storedKey{stored}
		if err := s.save(); err != nil {
			return err
		}
	}
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		return err
	}
	m.ClientID, m.ClientSecret = s.cfg.clientID, s.cfg.clientSecret
	m.CodeChallengeMethodsSupported = []string{mockoidc.CodeChallengeMethodS256}
	// mockoidc names the issuer of its access tokens after its server's
	// address; it never serves: this program's mux does.
	m.Server = &http.Server{Addr: addr}
	s.oidc = &oidcProvider{m: m, redirects: map[string]string{}}
	if err := s.openKeys(); err != nil {
		return err
	}
	s.handle(mux, "discovery", "GET /.well-known/openid-configuration", s.discovery)
	s.handle(mux, "jwks", "GET /jwks", s.jwks)
	s.handle(mux, "authorize", "GET /authorize", s.authorize)
	s.handle(mux, "authorize", "POST /authorize", s.authorize)
	s.handle(mux, "token", "POST /token", s.token)
	s.handle(mux, "userinfo", "GET /userinfo", m.Userinfo)
	s.handle(mux, "userinfo", "POST /userinfo", m.Userinfo)
	s.handle(mux, "control next", "POST /control/next", s.next)
	s.handle(mux, "control rotate-keys", "POST /control/rotate-keys", s.rotateKeys)
	return nil
}

// openKeys parses the stored keys once, and makes the first the one
// mockoidc signs with.
func (s *server) openKeys() error {
	s.oidc.keys = s.oidc.keys[:0]
	for _, stored := range s.st.Keys {
		key, err := stored.private()
		if err != nil {
			return err
		}
		kp, err := mockoidc.NewKeypair(key)
		if err != nil {
			return err
		}
		if _, err := kp.KeyID(); err != nil {
			return err
		}
		s.oidc.keys = append(s.oidc.keys, kp)
	}
	s.oidc.m.Keypair = s.oidc.keys[0]
	return nil
}

func (s *server) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.base,
		"authorization_endpoint":                s.base + "/authorize",
		"token_endpoint":                        s.base + "/token",
		"userinfo_endpoint":                     s.base + "/userinfo",
		"jwks_uri":                              s.base + "/jwks",
		"response_types_supported":              mockoidc.ResponseTypesSupported,
		"grant_types_supported":                 mockoidc.GrantTypesSupported,
		"subject_types_supported":               mockoidc.SubjectTypesSupported,
		"id_token_signing_alg_values_supported": mockoidc.IDTokenSigningAlgValuesSupported,
		"scopes_supported":                      mockoidc.ScopesSupported,
		"token_endpoint_auth_methods_supported": mockoidc.TokenEndpointAuthMethodsSupported,
		"claims_supported": []string{"sub", "iss", "aud", "exp", "iat", "nonce", "auth_time",
			"email", "email_verified", "preferred_username", "name", "groups", "amr", "acr"},
		"code_challenge_methods_supported": s.oidc.m.CodeChallengeMethodsSupported,
	})
}

// jwks publishes every key kept: the signing key and, after a rotation
// that kept it, the one before.
func (s *server) jwks(w http.ResponseWriter, _ *http.Request) {
	var set jose.JSONWebKeySet
	for _, kp := range s.oidc.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: kp.PublicKey, KeyID: kp.Kid, Use: "sig", Algorithm: string(jose.RS256)})
	}
	writeJSON(w, http.StatusOK, set)
}

// authorize shows the login page and, once the person chose, hands the
// request to mockoidc, which makes the code; everything mockoidc would
// refuse is refused first, through the redirect URI where that is allowed.
func (s *server) authorize(w http.ResponseWriter, r *http.Request) {
	q, ok := s.fromClient(w, r, http.StatusBadRequest)
	if !ok {
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !s.redirectAllowed(redirectURI) {
		// RFC 6749 §4.1.2.1: never redirect to a URI not registered.
		errorPage(w, http.StatusBadRequest, fmt.Sprintf("redirect_uri %q is not registered for this client", redirectURI))
		return
	}
	fail := func(code, description string) {
		redirectBack(w, r, redirectURI, url.Values{"error": {code}, "error_description": {description}, "state": {q.Get("state")}})
	}
	scopes := strings.Fields(q.Get("scope"))
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only the authorization code flow is served")
	case !slices.Contains(scopes, "openid"):
		fail("invalid_scope", "the scope must include openid")
	case slices.ContainsFunc(scopes, func(sc string) bool { return !slices.Contains(mockoidc.ScopesSupported, sc) }):
		fail("invalid_scope", "scopes supported: "+strings.Join(mockoidc.ScopesSupported, " "))
	case q.Get("state") == "":
		fail("invalid_request", "this provider wants a state")
	case challenge == "" && s.cfg.requirePKCE:
		fail("invalid_request", "a PKCE code_challenge is required")
	case challenge != "" && method != mockoidc.CodeChallengeMethodS256:
		// Without a method RFC 7636 means plain, which is not offered.
		fail("invalid_request", "code_challenge_method must be S256")
	case r.Method == http.MethodGet || q.Get("action") == "":
		// OpenID Connect Core §3.1.2.1 allows the request as a POST too.
		s.oidcLoginPage(w, http.StatusOK, q, "")
	case q.Get("action") == "deny":
		fail("access_denied", "the user denied the request")
	case q.Get("action") != "sign-in":
		s.oidcLoginPage(w, http.StatusBadRequest, q, "Press Sign in or Deny.")
	default:
		user, ok := s.st.oidcUser(q.Get("user"))
		if !ok {
			s.oidcLoginPage(w, http.StatusBadRequest, q, fmt.Sprintf("No account %q.", q.Get("user")))
			return
		}
		s.signInOIDC(w, r, user, redirectURI)
	}
}

func (s *server) oidcLoginPage(w http.ResponseWriter, status int, q url.Values, message string) {
	page := loginPage{Title: "Sign in to the test provider", Client: s.cfg.clientID, Action: "/authorize",
		Fields: formFields(q), Message: message}
	for _, u := range s.st.OIDCUsers {
		label := u.Subject
		switch {
		case u.PreferredUsername != "" && u.Email != "":
			label = u.PreferredUsername + " (" + u.Email + ")"
		case u.PreferredUsername != "" || u.Email != "":
			label = u.PreferredUsername + u.Email
		}
		page.Users = append(page.Users, option{u.Subject, label})
	}
	renderLogin(w, status, page)
}

// signInOIDC lets mockoidc make the code for user and notes the redirect
// URI the code was made for.
func (s *server) signInOIDC(w http.ResponseWriter, r *http.Request, user control.User, redirectURI string) {
	m := s.oidc.m
	m.QueueUser(&grant{user: user, issuer: s.base})
	rec := httptest.NewRecorder()
	m.Authorize(rec, r)
	// A request mockoidc refused would leave the user queued for the next.
	m.UserQueue = &mockoidc.UserQueue{}
	if loc, err := url.Parse(rec.Header().Get("Location")); err == nil && loc.Query().Get("code") != "" {
		s.oidc.redirects[loc.Query().Get("code")] = redirectURI
	}
	copyResponse(w, rec, rec.Body.Bytes())
}

// token lets mockoidc answer the token request, after what it does not
// check itself: client credentials in a Basic header and the redirect URI.
func (s *server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if id, secret, ok := r.BasicAuth(); ok {
		// RFC 6749 §2.3.1: both are form-encoded before they are joined.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		r.Form.Set("client_id", id)
		r.Form.Set("client_secret", secret)
	}
	code := r.Form.Get("code")
	if want, ok := s.oidc.redirects[code]; ok && r.Form.Get("grant_type") == "authorization_code" && r.Form.Get("redirect_uri") != want {
		tokenError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri is not the authorization request's")
		return
	}
	rec := httptest.NewRecorder()
	s.oidc.m.Token(rec, r)
	body := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		delete(s.oidc.redirects, code)
		var err error
		if body, err = s.finishTokens(body); err != nil {
			tokenError(w, http.StatusInternalServerError, "server_error", err.Error())
			return
		}
	}
	copyResponse(w, rec, body)
}

// finishTokens corrects mockoidc's expires_in, which it writes as a Go
// duration in nanoseconds where RFC 6749 counts seconds, and spoils the ID
// token as the next knobs say.
func (s *server) finishTokens(body []byte) ([]byte, error) {
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, err
	}
	resp["expires_in"] = json.RawMessage(strconv.Itoa(int(s.oidc.m.AccessTTL / time.Second)))
	if raw, ok := resp["id_token"]; ok && len(s.st.Next) > 0 {
		var idToken string
		if err := json.Unmarshal(raw, &idToken); err != nil {
			return nil, err
		}
		k := s.st.Next[0]
		s.st.Next = s.st.Next[1:]
		spoiled, err := s.spoil(idToken, k)
		if err != nil {
			return nil, err
		}
		resp["id_token"], _ = json.Marshal(spoiled)
		if err := s.save(); err != nil {
			return nil, err
		}
	}
	return json.Marshal(resp)
}

func tokenError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// copyResponse writes what a handler wrote to rec, with body in place of
// its body.
func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder, body []byte) {
	for name, values := range rec.Header() {
		w.Header()[name] = values
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// grant is the user a sign-in chose, as mockoidc asks for the claims of
// its tokens.
type grant struct {
	user   control.User
	issuer string
}

func (g *grant) ID() string { return g.user.Subject }

func (g *grant) Userinfo(scopes []string) ([]byte, error) {
	return json.Marshal(userClaims(g.user, scopes))
}

// Claims are the ID token's: mockoidc's registered claims and nonce, the
// issuer at the root of the address, the user's claims by scope, and amr
// and acr whatever the scope.
func (g *grant) Claims(scopes []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	base.Issuer = g.issuer
	data, err := json.Marshal(base)
	if err != nil {
		return nil, err
	}
	claims := jwt.MapClaims{}
	if err := json.Unmarshal(data, &claims); err != nil {
		return nil, err
	}
	for name, v := range userClaims(g.user, scopes) {
		claims[name] = v
	}
	if base.IssuedAt != nil {
		claims["auth_time"] = base.IssuedAt.Unix()
	}
	if len(g.user.AMR) > 0 {
		claims["amr"] = g.user.AMR
	}
	if g.user.ACR != "" {
		claims["acr"] = g.user.ACR
	}
	return claims, nil
}

// claims are the user's claims that scopes grant, as OpenID Connect Core
// §5.4 groups them; groups comes with the scope of that name.
func userClaims(u control.User, scopes []string) map[string]any {
	c := map[string]any{"sub": u.Subject}
	if slices.Contains(scopes, "profile") {
		if u.PreferredUsername != "" {
			c["preferred_username"] = u.PreferredUsername
		}
		if u.Name != "" {
			c["name"] = u.Name
		}
	}
	if slices.Contains(scopes, "email") && u.Email != "" {
		c["email"] = u.Email
		c["email_verified"] = u.EmailVerified
	}
	if slices.Contains(scopes, "groups") && len(u.Groups) > 0 {
		c["groups"] = u.Groups
	}
	return c
}
