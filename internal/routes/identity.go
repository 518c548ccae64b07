package routes

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/identity"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// Signing in with an identity provider (OpenID Connect, GitHub): another
// way to start the same session. A sign-in is a flow kept in PostgreSQL,
// single use and short-lived, so that the callback may land on any server;
// it is bound to a key the browser holds in a cookie of its own, which
// every flow of the browser shares, so that two tabs signing in at once do
// not undo each other (oauth2-proxy's lost CSRF cookie) while a callback
// carried to another browser finds no flow.

// flowLifetime is how long a sign-in at a provider may take.
const flowLifetime = 10 * time.Minute

// checkTimeout bounds the check that a provider answers before a browser
// is sent there.
const checkTimeout = 3 * time.Second

// Provider is a configured identity provider (internal/identity).
type Provider = *identity.Provider

// providers is the part that signs in at identity providers: the sign-in
// routes use it, and the account page, to link one.
type providers struct {
	base
	*cookies
	store *store.Store
	list  []Provider
}

// provider is the configured provider of that name, or nil.
func (h *providers) provider(name string) Provider {
	for _, p := range h.list {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// flowKeyCookieName is the cookie holding the browser's flow key.
func (h *cookies) flowKeyCookieName() string { return h.scopedCookieName("_flow") }

// callbackURL is where the provider sends the browser back: this site's
// {login_path}/callback/{name}, the redirect URI to register there.
func (h *providers) callbackURL(r *http.Request, p Provider) string {
	return requestScheme(r) + "://" + r.Host + h.LoginPath + "/callback/" + p.Name()
}

// startHref is the link that starts a sign-in with p, coming back to redirect.
func (h *responder) startHref(p Provider, redirect string) string {
	return h.LoginPath + "/with/" + p.Name() + "?redirect=" + url.QueryEscape(redirect)
}

// providerButtons are the login page's buttons, one a provider.
func (h *signInRoutes) providerButtons(redirect string) []web.ProviderButton {
	var buttons []web.ProviderButton
	for _, p := range h.providers.list {
		ok, _ := p.Available()
		buttons = append(buttons, web.ProviderButton{Name: p.Name(), Label: p.Label(), Href: h.startHref(p, redirect), Unavailable: !ok})
	}
	return buttons
}

// serveProviderStart sends the browser to sign in at a provider: GET
// {login_path}/with/{provider}.
func (h *signInRoutes) serveProviderStart(w http.ResponseWriter, r *http.Request, _ *caller) error {
	p := h.provider(r.PathValue("provider"))
	if p == nil {
		return refuse(ReasonNoSuchProvider, "No identity provider of that name")
	}
	redirect := h.safeReturn(r, r.URL.Query().Get("redirect"))
	// Each begin writes a row: an address gets as many as a passkey's.
	if err := h.throttleBegin(r); err != nil {
		return err
	}
	invitation, err := h.invitationFlow(w, r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	defer cancel()
	if ok, _ := p.Available(); !ok || p.CheckNow(ctx) != nil {
		return h.renderLoginPage(w, r, http.StatusServiceUnavailable, credentials{Redirect: redirect},
			p.Label()+" is unavailable right now: sign in with your password, or try again in a few minutes")
	}
	return h.beginFlow(w, r, p, store.IdentityFlow{Redirect: redirect, InvitationID: invitation})
}

// beginFlow records a sign-in with f's redirect (or, with f.LinkUserID, the
// linking of a provider to that user; with f.InvitationID, the invited
// account's creation) and sends the browser to the provider.
func (h *providers) beginFlow(w http.ResponseWriter, r *http.Request, p Provider, f store.IdentityFlow) error {
	if c, err := r.Cookie(h.flowKeyCookieName()); err == nil {
		f.Binding = c.Value
	}
	f.Provider, f.Nonce, f.PKCEVerifier = p.Name(), identity.NewNonce(), identity.NewVerifier()
	flow, err := h.store.BeginIdentityFlow(r.Context(), f)
	if errors.Is(err, store.ErrInvitationUnknown) {
		return invitationRefusal(err) // revoked since it was looked at
	}
	if err != nil {
		return storeUnavailable(err)
	}
	// Lax, since the provider's redirect back is a top-level navigation
	// from another site; the login path only, where the callback is.
	http.SetCookie(w, &http.Cookie{Name: h.flowKeyCookieName(), Value: flow.Binding, Path: h.LoginPath,
		MaxAge: int(flowLifetime / time.Second), HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.AuthURL(flow.State, flow.Nonce, flow.PKCEVerifier, h.callbackURL(r, p)), http.StatusSeeOther)
	return nil
}

// serveProviderCallback finishes a sign-in at a provider: GET
// {login_path}/callback/{provider}. The flow is used up first, whatever
// the provider answered, so a callback works once.
func (h *signInRoutes) serveProviderCallback(w http.ResponseWriter, r *http.Request, _ *caller) error {
	p := h.provider(r.PathValue("provider"))
	if p == nil {
		return refuse(ReasonNoSuchProvider, "No identity provider of that name")
	}
	q := r.URL.Query()
	key := ""
	if c, err := r.Cookie(h.flowKeyCookieName()); err == nil {
		key = c.Value
	}
	flow, err := h.store.TakeIdentityFlow(r.Context(), p.Name(), q.Get("state"), key)
	switch {
	case errors.Is(err, store.ErrFlowNotFound):
		return h.flowPage(w, r, p, http.StatusBadRequest, "This sign-in has expired or was already used",
			"Signing in with "+p.Label()+" takes at most "+waitText(int(flowLifetime/time.Second))+", once, in the browser that began it.", h.Home)
	case err != nil:
		return storeUnavailable(err)
	}
	if err := p.CallbackError(q); err != nil {
		return h.exchangeFailed(w, r, p, flow, err)
	}
	id, err := p.Exchange(r.Context(), q.Get("code"), flow.PKCEVerifier, flow.Nonce, h.callbackURL(r, p))
	if err != nil {
		return h.exchangeFailed(w, r, p, flow, err)
	}
	// With no allow list only a linked identity signs in (identityUser);
	// with one, every sign-in must pass it, a linked one's too.
	if ok, why := p.Admits(id); !ok && p.Config().HasAllowList() {
		// why is for the log: it names the lists, which are the operator's.
		h.logger.Info("sign-in with an identity provider refused by its allow list", zap.String("provider", p.Name()),
			zap.String("why", why), zap.String("client_ip", clientIP(r)))
		return h.flowPage(w, r, p, http.StatusForbidden, "Not allowed",
			"This "+p.Label()+" account may not sign in here. Ask an administrator if it should.", h.Home)
	}
	if flow.InvitationID != "" {
		return h.invitedWithProvider(w, r, p, flow, id)
	}
	if flow.LinkUserID != "" {
		return h.linked(w, r, p, flow.LinkUserID, id)
	}
	user, err := h.identityUser(r, p, id)
	switch {
	case errors.Is(err, store.ErrIdentityNotFound):
		return h.flowPage(w, r, p, http.StatusForbidden, "No account for this "+p.Label()+" account",
			"No account of this site is linked to it. Sign in with your password and link "+p.Label()+
				" on your account page, or ask an administrator.", h.Home)
	case err != nil:
		return storeUnavailable(err)
	}
	return h.signInWithProvider(w, r, p, id, user, flow.Redirect)
}

// identityUser is the user id signs in as: the one linked to it, or one an
// admin allowed it to link to by its verified email, or, with auto_create,
// a new one; store.ErrUserNotFound when none.
func (h *signInRoutes) identityUser(r *http.Request, p Provider, id identity.Identity) (*store.User, error) {
	link := store.Identity{Provider: p.Name(), Subject: id.Subject}
	if id.EmailVerified {
		link.Email = id.Email
	}
	user, err := h.store.UserByIdentity(r.Context(), link)
	if !errors.Is(err, store.ErrIdentityNotFound) {
		return user, err
	}
	if link.Email != "" {
		switch user, err := h.store.TakeIdentityInvitation(r.Context(), link); {
		case err == nil:
			return user, nil
		case !errors.Is(err, store.ErrInvitationNotFound):
			return nil, err
		}
	}
	if !p.Config().AutoCreate {
		return nil, store.ErrIdentityNotFound
	}
	return h.store.CreateUserFromIdentity(r.Context(), id.UsernameHint, link, id.Groups)
}

// signInWithProvider starts the session of user, signed in by p, unless a
// second factor of the user's own is still to come.
func (h *signInRoutes) signInWithProvider(w http.ResponseWriter, r *http.Request, p Provider, id identity.Identity,
	user *store.User, redirect string) error {
	// The provider's groups first, so the session starts with them, after a second step too.
	if p.Config().GroupsClaim != "" {
		if err := h.store.SyncProviderGroups(r.Context(), user.ID, p.Name(), id.Groups); err != nil {
			return storeUnavailable(err)
		}
	}
	method := store.MethodProvider
	if id.MFA {
		method = store.MethodProviderMFA
	} else {
		switch factors, err := h.store.UserFactors(r.Context(), user.ID); {
		case err != nil:
			return storeUnavailable(err)
		case factors.Any():
			return h.askSecondFactorAfter(w, r, credentials{Username: user.Username, Redirect: redirect, form: true}, user,
				factors, store.MethodProvider)
		}
	}
	// The password's way to a session, with the provider's method.
	create := func(ctx context.Context, sp store.SessionParams) (string, *store.Session, error) {
		sp.Method = method
		return h.store.CreateSession(ctx, sp)
	}
	if err := h.startSessionWith(w, r, user, false, create); err != nil {
		return storeUnavailable(err)
	}
	h.signInAttempt(r, user.Username, user, loginSuccess, store.FactorProvider)
	return h.sendBack(w, r, h.safeReturn(r, redirect))
}

// linked links id to the user who began the flow on their account page.
func (h *signInRoutes) linked(w http.ResponseWriter, r *http.Request, p Provider, userID store.UserID, id identity.Identity) error {
	link := store.Identity{Provider: p.Name(), Subject: id.Subject}
	if id.EmailVerified {
		link.Email = id.Email
	}
	err := h.store.LinkIdentity(r.Context(), userID, link)
	switch {
	case errors.Is(err, store.ErrIdentityTaken):
		return h.flowPage(w, r, p, http.StatusConflict, "Already linked to another account",
			"This "+p.Label()+" account signs in to another account of this site.", h.AccountPath)
	case errors.Is(err, store.ErrProviderLinked):
		return h.flowPage(w, r, p, http.StatusConflict, "Already linked",
			"Your account already has a "+p.Label()+" account linked: unlink it first.", h.AccountPath)
	case err != nil:
		return storeUnavailable(err)
	}
	http.Redirect(w, r, h.AccountPath+"?done=identity-linked", http.StatusSeeOther)
	return nil
}

// exchangeFailed answers a callback whose code or token did not hold,
// saying what the person can do; why is logged, never shown.
func (h *signInRoutes) exchangeFailed(w http.ResponseWriter, r *http.Request, p Provider, flow *store.IdentityFlow, err error) error {
	h.logger.Info("sign-in with an identity provider failed", zap.String("provider", p.Name()), zap.Error(err),
		zap.String("client_ip", clientIP(r)))
	switch {
	case errors.Is(err, identity.ErrDenied):
		return h.flowPage(w, r, p, http.StatusUnauthorized, "Not signed in",
			"You did not allow "+p.Label()+" to sign you in here, or it did not sign you in.", flow.Redirect)
	case errors.Is(err, identity.ErrUnavailable):
		return h.flowPage(w, r, p, http.StatusServiceUnavailable, p.Label()+" is unavailable",
			p.Label()+" could not be reached to finish signing in.", flow.Redirect)
	case errors.Is(err, identity.ErrEmailNotVerified):
		return h.flowPage(w, r, p, http.StatusForbidden, "Email address not verified",
			"Verify your email address at "+p.Label()+" first, then sign in again.", flow.Redirect)
	}
	return h.flowPage(w, r, p, http.StatusUnauthorized, "Not signed in",
		"The answer from "+p.Label()+" could not be verified.", flow.Redirect)
}

// flowPage tells the person how a sign-in at p ended, with a way to start
// again and a way back to signing in with a password.
func (h *signInRoutes) flowPage(w http.ResponseWriter, r *http.Request, p Provider, status int, heading, message, redirect string) error {
	return h.renderMessage(w, r, status, web.MessagePage{
		Status:  status,
		Heading: heading,
		Message: message,
		Links: []web.Link{{Href: h.startHref(p, h.safeReturn(r, redirect)), Text: "Sign in with " + p.Label() + " again"},
			{Href: h.LoginPath, Text: "Back to sign-in"}},
	})
}
