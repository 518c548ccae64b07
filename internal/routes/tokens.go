package routes

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// API tokens: a signed-in user makes named tokens (pgs_…) for their
// scripts, lists them and revokes them, by the JSON routes and on the
// account page. A token is shown once, in the answer that creates it; the
// store keeps only its hash, and the log only its name.

// tokenJSON is how an API token appears in the JSON routes: named by its
// handle, never by the token or its hash.
type tokenJSON struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    *time.Time `json:"expires_at"`   // null: never
	LastUsedAt   *time.Time `json:"last_used_at"` // null: never used
	LastUsedFrom string     `json:"last_used_from"`
	Paths        []string   `json:"paths"`
	Admin        bool       `json:"admin"`
}

// newTokenJSON is the answer to a token's creation, the one time the token
// is shown.
type newTokenJSON struct {
	Token string `json:"token"`
	tokenJSON
}

func toTokenJSON(t store.APIToken) tokenJSON {
	out := tokenJSON{ID: string(t.Handle), Name: t.Name, CreatedAt: t.CreatedAt, LastUsedFrom: t.LastUsedFrom,
		Paths: append([]string{}, t.Paths...), Admin: t.AdminScope}
	if !t.ExpiresAt.IsZero() {
		out.ExpiresAt = &t.ExpiresAt
	}
	if !t.LastUsedAt.IsZero() {
		out.LastUsedAt = &t.LastUsedAt
	}
	return out
}

// tokenRequest is the body of POST {api}/tokens, and what the account
// page's create form sends.
type tokenRequest struct {
	Name string `json:"name"`
	// ExpiresIn is whole days (30d) or a Go duration (720h), as the
	// command line's --expires; empty: never.
	ExpiresIn string   `json:"expires_in"`
	Paths     []string `json:"paths"`
	Admin     bool     `json:"admin"`
}

// notWithAPIToken refuses a request that an API token authenticated: a
// leaked token must not be able to make more tokens or keep itself alive.
func notWithAPIToken(c *caller) error {
	if c.apiToken {
		return refuse(ReasonNotWithAPIToken, "API tokens cannot manage API tokens, the password or second factors")
	}
	return nil
}

// serveOwnTokens lists the caller's API tokens: GET {api}/tokens.
func (h *accountRoutes) serveOwnTokens(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := notWithAPIToken(c); err != nil {
		return err
	}
	tokens, err := h.store.ListAPITokens(r.Context(), c.session.User.ID)
	if err != nil {
		return storeUnavailable(err)
	}
	return writeJSONList(w, tokens, toTokenJSON)
}

// serveCreateToken makes an API token for the caller: POST {api}/tokens.
func (h *accountRoutes) serveCreateToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := notWithAPIToken(c); err != nil {
		return err
	}
	var body tokenRequest
	if err := request.DecodeJSONObject(r.Body, &body, "name", "expires_in", "paths", "admin"); err != nil {
		return badBody(err)
	}
	token, t, err := h.createToken(r, c, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, newTokenJSON{Token: token, tokenJSON: toTokenJSON(t)})
	return nil
}

// serveRevokeToken revokes one of the caller's API tokens: DELETE
// {api}/tokens/{id}.
func (h *accountRoutes) serveRevokeToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := notWithAPIToken(c); err != nil {
		return err
	}
	if err := h.revokeToken(r, c, r.PathValue("id")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// createToken does the work of the JSON route and the account form: 400
// for a bad name, paths or lifetime, 403 for admin rights asked by a
// user who is no admin, 409 for a name the user's tokens already have.
func (h *accountRoutes) createToken(r *http.Request, c *caller, req tokenRequest) (string, store.APIToken, error) {
	user := c.session.User
	var inputErr *store.InputError
	var expiresAt time.Time
	if req.ExpiresIn != "" {
		d, err := store.ParseAPITokenLifetime(req.ExpiresIn)
		if errors.As(err, &inputErr) {
			return "", store.APIToken{}, badInput(inputErr)
		}
		expiresAt = time.Now().Add(d)
	}
	notAdmin := refuse(ReasonAdminScopeNeedsAdmin, "Only an admin can create a token with admin rights")
	if req.Admin && !user.IsAdmin {
		return "", store.APIToken{}, notAdmin
	}
	token, t, err := h.store.CreateAPIToken(r.Context(), user.ID, req.Name, expiresAt, req.Paths, req.Admin)
	switch {
	case errors.As(err, &inputErr):
		return "", store.APIToken{}, badInput(inputErr)
	case errors.Is(err, store.ErrTokenNameTaken):
		return "", store.APIToken{}, refuse(ReasonTokenNameTaken, "You already have an API token of that name")
	case errors.Is(err, store.ErrNotAdmin):
		// The user's admin rights were taken away since the session was read.
		return "", store.APIToken{}, notAdmin
	case errors.Is(err, store.ErrUserNotFound):
		return "", store.APIToken{}, sessionExpired()
	case err != nil:
		return "", store.APIToken{}, storeUnavailable(err)
	}
	h.logger.Info("API token created", zap.String("username", user.Username), zap.String("token_name", t.Name),
		zap.String("token_id", string(t.Handle)), zap.Bool("admin", t.AdminScope), zap.Int("paths", len(t.Paths)))
	return token, t, nil
}

// revokeToken revokes the caller's token with that handle on every server
// (the store announces it), or refuses with 404 when they have none by it.
func (h *accountRoutes) revokeToken(r *http.Request, c *caller, handle string) error {
	user := c.session.User
	notFound := refuse(ReasonNoSuchToken, "No such API token")
	// The token's name is read first only for the log, which names tokens
	// as their owner does.
	tokens, err := h.store.ListAPITokens(r.Context(), user.ID)
	if err != nil {
		return storeUnavailable(err)
	}
	name, found := "", false
	for _, t := range tokens {
		if sameHandle(handle, t.Handle) {
			name, found = t.Name, true
		}
	}
	if !found {
		return notFound
	}
	err = h.store.RevokeAPIToken(r.Context(), user.ID, store.Handle(handle))
	switch {
	case errors.Is(err, store.ErrTokenNotFound):
		return notFound
	case err != nil:
		return storeUnavailable(err)
	}
	// This server forgets the token at once rather than when the store's
	// announcement comes back to it.
	h.memory.ForgetUser(user.ID)
	h.logger.Info("API token revoked", zap.String("username", user.Username), zap.String("token_name", name),
		zap.String("token_id", handle))
	return nil
}

// addTokens fills in the account page's "API tokens" section, with the
// error of the create form its query names.
func (h *accountRoutes) addTokens(r *http.Request, page *web.AccountPage, user store.User) error {
	tokens, err := h.store.ListAPITokens(r.Context(), user.ID)
	if err != nil {
		return storeUnavailable(err)
	}
	section := &web.AccountTokens{Admin: user.IsAdmin}
	if e, ok := accountErrors[r.URL.Query().Get("error")]; ok && e.form == "tokens" {
		section.Error, section.ErrorField = e.text, e.field
	}
	now := time.Now()
	for _, t := range tokens {
		section.List = append(section.List, web.AccountToken{Handle: string(t.Handle), Name: t.Name,
			CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Expired: !t.ExpiresAt.IsZero() && !t.ExpiresAt.After(now),
			LastUsedAt: t.LastUsedAt, LastUsedFrom: t.LastUsedFrom, Paths: t.Paths, Admin: t.AdminScope})
	}
	page.Tokens = section
	return nil
}

// serveTokenForm carries out the account page's token forms. Revoking goes
// back to the page; creating shows the page at once with the new token,
// which no later page shows again. The person's own mistakes go back to
// the page by fixed keys, which never echo what they typed.
func (h *accountRoutes) serveTokenForm(w http.ResponseWriter, r *http.Request, c *caller, back func(key, value string) error) error {
	if err := notWithAPIToken(c); err != nil {
		return err
	}
	var ref *Refusal
	if r.PostFormValue("action") == "token-revoke" {
		err := h.revokeToken(r, c, r.PostFormValue("token"))
		switch {
		case err == nil:
			return back("done", "token-revoked")
		case errors.As(err, &ref) && ref.reason == ReasonNoSuchToken:
			return back("error", "no-token")
		}
		return err
	}
	req := tokenRequest{Name: r.PostFormValue("token_name"), ExpiresIn: r.PostFormValue("token_expires"),
		Paths: strings.Fields(r.PostFormValue("token_paths")), Admin: r.PostFormValue("token_admin") == "on"}
	switch {
	case store.ValidateAPITokenName(req.Name) != nil:
		return back("error", "token-name")
	case store.ValidateAPITokenPaths(req.Paths) != nil:
		return back("error", "token-paths")
	}
	token, t, err := h.createToken(r, c, req)
	switch {
	case errors.As(err, &ref) && ref.reason == ReasonTokenNameTaken:
		return back("error", "token-name-taken")
	case errors.As(err, &ref) && ref.reason == ReasonAdminScopeNeedsAdmin:
		return back("error", "token-admin")
	case errors.As(err, &ref) && ref.reason == ReasonBadRequest:
		return back("error", "token-expiry") // the only field left that the store reads
	case err != nil:
		return err
	}
	page, err := h.accountPage(r, c.session)
	if err != nil {
		return err
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	page.Tokens.Created = &web.AccountNewToken{Name: t.Name, Token: token, SiteURL: scheme + "://" + r.Host + "/"}
	return renderPage(w, r, http.StatusOK, web.DefaultAccountTemplate(), h.BuiltinPageCSP, page)
}
