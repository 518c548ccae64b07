package routes

import (
	"errors"
	"net/http"

	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// The account page's linked accounts: which providers sign the user in,
// "Link <provider>" and "Unlink".

// addIdentities puts the user's linked accounts on the page, and the
// providers they can still link.
func (h *accountRoutes) addIdentities(r *http.Request, page *web.AccountPage, user store.User) error {
	if len(h.providers.list) == 0 {
		return nil
	}
	linked, err := h.store.Identities(r.Context(), user.ID)
	if err != nil {
		return storeUnavailable(err)
	}
	has := map[string]bool{}
	for _, id := range linked {
		has[id.Provider] = true
		label := id.Provider
		if p := h.provider(id.Provider); p != nil {
			label = p.Label()
		}
		page.Identities = append(page.Identities, web.LinkedIdentity{Provider: id.Provider, Label: label, Email: id.Email,
			LinkedAt: id.CreatedAt, LastUsedAt: id.LastUsedAt, CanUnlink: user.HasPassword || len(linked) > 1 || len(page.Passkeys) > 0,
			Why: "It is your only way to sign in: set a password first"})
	}
	page.NoPassword = !user.HasPassword
	for _, p := range h.providers.list {
		if has[p.Name()] {
			continue
		}
		ok, _ := p.Available()
		page.LinkProviders = append(page.LinkProviders, web.ProviderButton{Name: p.Name(), Label: p.Label(), Unavailable: !ok})
	}
	return nil
}

// serveIdentityForm links a provider to the user (the flow comes back to
// the account page) or unlinks one, unless it is their last way to sign in.
func (h *accountRoutes) serveIdentityForm(w http.ResponseWriter, r *http.Request, c *caller, back func(key, value string) error) error {
	p := h.provider(r.PostFormValue("provider"))
	if p == nil {
		return back("error", "no-provider")
	}
	user := c.session.User
	switch r.PostFormValue("action") {
	case "link-identity":
		if ok, _ := p.Available(); !ok {
			return back("error", "provider-unavailable")
		}
		return h.beginFlow(w, r, p, store.IdentityFlow{Redirect: h.AccountPath, LinkUserID: user.ID})
	default:
		err := h.store.UnlinkIdentity(r.Context(), user.ID, p.Name())
		switch {
		case errors.Is(err, store.ErrLastSignInMethod):
			return back("error", "last-sign-in")
		case errors.Is(err, store.ErrIdentityNotFound):
			return back("error", "no-identity")
		case err != nil:
			return storeUnavailable(err)
		}
		return back("done", "identity-unlinked")
	}
}
