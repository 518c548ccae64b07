package routes

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/identity"
	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// The invitation page, {login_path}/invitation: whoever holds an
// invitation's link picks a name and a password there, or signs in with an
// identity provider, and is signed in to the new account. It works with
// registration off, which is what invitations are for. The page's address
// carries the token, so the page and everything it answers send no Referer.

// invitationRefusal is the refusal for an invitation the store says
// cannot be used, or nil for another error: 410 for one expired or used,
// 404 for a token no invitation has.
func invitationRefusal(err error) *Refusal {
	switch {
	case errors.Is(err, store.ErrInvitationExpired):
		return refuse(ReasonInvitationExpired, "This invitation has expired: ask whoever sent it for a new one")
	case errors.Is(err, store.ErrInvitationUsed):
		return refuse(ReasonInvitationUsed, "This invitation was used already: sign in with the account it made")
	case errors.Is(err, store.ErrInvitationUnknown):
		return refuse(ReasonNoSuchInvitation, "No such invitation: check that the whole link was opened")
	}
	return nil
}

// invitationPath is where the invitation page is, and where its form posts.
func (h *base) invitationPath() string { return h.LoginPath + "/invitation" }

// serveInvitationPage shows the form of the invitation of ?token=, or why
// it cannot be used. Only looking, it uses nothing up: a mail scanner that
// follows the link leaves it working.
func (h *signInRoutes) serveInvitationPage(w http.ResponseWriter, r *http.Request, _ *caller) error {
	w.Header().Set("Referrer-Policy", "no-referrer")
	token := r.URL.Query().Get("token")
	inv, err := h.store.PeekInvitation(r.Context(), token)
	if ref := invitationRefusal(err); ref != nil {
		return ref
	}
	if err != nil {
		return storeUnavailable(err)
	}
	return h.renderInvitation(w, r, http.StatusOK, token, inv, invitationForm{}, "")
}

// invitationForm is what the invitation's form, or a script, sends.
type invitationForm struct {
	Token    string `json:"token"`
	Username string `json:"username"`
	Password string `json:"password"`
	Confirm  string `json:"confirm"`
	form     bool
	// field is the field a refusal is about, for the page.
	field string
}

// readInvitationForm reads the form, or a JSON object from a script.
func readInvitationForm(r *http.Request) (invitationForm, error) {
	var f invitationForm
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "application/x-www-form-urlencoded" {
		if err := request.DecodeJSONObject(r.Body, &f, "token", "username", "password", "confirm"); err != nil {
			return f, badBody(err)
		}
		return f, nil
	}
	f.form = true
	if err := r.ParseForm(); err != nil {
		return f, badForm(err)
	}
	for _, field := range []string{"token", "username", "password", "confirm"} {
		if len(r.PostForm[field]) > 1 {
			return f, refuse(ReasonBadRequest, fmt.Sprintf("Field %q given twice", field))
		}
	}
	f.Token, f.Username = r.PostFormValue("token"), r.PostFormValue("username")
	f.Password, f.Confirm = r.PostFormValue("password"), r.PostFormValue("confirm")
	return f, nil
}

// serveAcceptInvitation creates the account the invitation offers and
// signs it in: the form goes home, a script gets the user (201). A refused
// name or password keeps the invitation open and shows the form again.
func (h *signInRoutes) serveAcceptInvitation(w http.ResponseWriter, r *http.Request, _ *caller) error {
	w.Header().Set("Referrer-Policy", "no-referrer")
	f, err := readInvitationForm(r)
	if err != nil {
		return err
	}
	if err := h.cookieCanBeSet(r); err != nil {
		return err
	}
	user, err := h.acceptInvitation(r, &f)
	var ref *Refusal
	if errors.As(err, &ref) && f.form && (ref.status == http.StatusBadRequest || ref.status == http.StatusConflict) {
		inv, peekErr := h.store.PeekInvitation(r.Context(), f.Token)
		if gone := invitationRefusal(peekErr); gone != nil {
			return gone
		}
		if peekErr != nil {
			return storeUnavailable(peekErr)
		}
		return h.renderInvitation(w, r, ref.status, f.Token, inv, f, ref.message)
	}
	if err != nil {
		return err
	}
	h.logger.Info("user created by invitation", zap.String("username", user.Username), zap.String("client_ip", clientIP(r)))
	if err := h.startSession(w, r, user, false); err != nil {
		return storeUnavailable(err)
	}
	if f.form {
		http.Redirect(w, r, h.Home, http.StatusSeeOther)
		return nil
	}
	writeJSON(w, http.StatusCreated, toUserJSON(*user))
	return nil
}

// acceptInvitation creates the user f asks for, or says why not, naming
// the field at fault in f.
func (h *signInRoutes) acceptInvitation(r *http.Request, f *invitationForm) (*store.User, error) {
	if f.Token == "" {
		return nil, refuse(ReasonBadRequest, "No invitation given: open the whole link of the invitation")
	}
	if (f.form || f.Confirm != "") && f.Password != f.Confirm {
		f.field = "password"
		return nil, refuse(ReasonPasswordsDiffer, "The two passwords differ: type the same one twice")
	}
	user, err := h.store.AcceptInvitation(r.Context(), f.Token, f.Username, f.Password)
	var inputErr *store.InputError
	switch {
	case err == nil:
		return user, nil
	case invitationRefusal(err) != nil:
		return nil, invitationRefusal(err)
	case errors.As(err, &inputErr):
		f.field = "username"
		if store.ValidatePassword(f.Password) != nil {
			f.field = "password"
		}
		return nil, badInput(inputErr)
	case errors.Is(err, store.ErrUserExists):
		f.field = "username"
		return nil, refuse(ReasonUsernameTaken, msgUsernameTaken)
	}
	return nil, passwordCheckFailed(err)
}

// renderInvitation shows the invitation's form, with message about f's
// field after a refusal.
func (h *signInRoutes) renderInvitation(w http.ResponseWriter, r *http.Request, status int, token string,
	inv *store.Invitation, f invitationForm, message string) error {
	page := web.InvitationPage{SiteName: h.SiteName, Action: h.invitationPath(), Token: token, Email: inv.Email,
		ExpiresAt: inv.ExpiresAt, Username: f.Username, Error: message, ErrorField: f.field}
	if message != "" && f.field == "" {
		page.ErrorField = "username"
	}
	for _, p := range h.providers.list {
		ok, _ := p.Available()
		page.Providers = append(page.Providers, web.ProviderButton{Name: p.Name(), Label: p.Label(),
			Href: h.LoginPath + "/with/" + p.Name() + "?invitation=" + url.QueryEscape(token), Unavailable: !ok})
	}
	w.Header().Set("Referrer-Policy", "no-referrer")
	return renderPage(w, r, status, web.InvitationTemplate(), h.BuiltinPageCSP, page)
}

// invitationFlow is the invitation a provider's sign-in starts with, from
// ?invitation=<token>: its id, which the flow keeps instead of the token,
// "" for a sign-in without one, or the refusal of one that cannot be used.
func (h *signInRoutes) invitationFlow(w http.ResponseWriter, r *http.Request) (string, error) {
	token, ok := r.URL.Query()["invitation"]
	if !ok {
		return "", nil
	}
	w.Header().Set("Referrer-Policy", "no-referrer")
	inv, err := h.store.PeekInvitation(r.Context(), token[0])
	if ref := invitationRefusal(err); ref != nil {
		return "", ref
	}
	if err != nil {
		return "", storeUnavailable(err)
	}
	return inv.ID, nil
}

// invitedWithProvider finishes a provider's sign-in that began on an
// invitation: it creates the invited user with the identity linked, even
// where the provider's first sign-ins may not create users, and signs them
// in. An identity linked to an account already is refused, and the
// invitation stays open for another way.
func (h *signInRoutes) invitedWithProvider(w http.ResponseWriter, r *http.Request, p Provider, flow *store.IdentityFlow,
	id identity.Identity) error {
	link := store.Identity{Provider: p.Name(), Subject: id.Subject}
	if id.EmailVerified {
		link.Email = id.Email
	}
	user, err := h.store.AcceptInvitationWithIdentity(r.Context(), flow.InvitationID, id.UsernameHint, link)
	switch {
	case errors.Is(err, store.ErrIdentityTaken):
		return h.renderMessage(w, r, http.StatusConflict, web.MessagePage{
			Status:  http.StatusConflict,
			Heading: "Already linked to another account",
			Message: "This " + p.Label() + " account signs in to an account of this site already, so it cannot make the invited one.",
			Detail:  "Open the invitation again and choose a username and password, or another " + p.Label() + " account.",
			Links:   []web.Link{{Href: h.startHref(p, h.Home), Text: "Sign in with " + p.Label()}, {Href: h.LoginPath, Text: "Back to sign-in"}},
		})
	case invitationRefusal(err) != nil:
		return invitationRefusal(err)
	case err != nil:
		return storeUnavailable(err)
	}
	h.logger.Info("user created by invitation", zap.String("username", user.Username), zap.String("provider", p.Name()),
		zap.String("client_ip", clientIP(r)))
	return h.signInWithProvider(w, r, p, id, user, h.Home)
}
