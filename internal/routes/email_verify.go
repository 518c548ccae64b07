package routes

import (
	"errors"
	"net/http"
	"net/url"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// {login_path}/verify-email, where a verification link leads. A GET only
// asks to confirm, with a button: mail scanners and link previews open
// links, and must not use them. The POST, from the page's button, uses the
// link. Both answer whether or not the browser is signed in, and as who:
// the link, not a session, shows the mailbox is the user's.

// noReferrer keeps the link's token out of the Referer of anything the
// page leads to; renderPage keeps what a route set.
func noReferrer(w http.ResponseWriter) { w.Header().Set("Referrer-Policy", "no-referrer") }

// serveVerifyEmailPage is GET {login_path}/verify-email?token=…: the
// confirmation page of a link that works, or why it does not.
func (h *signInRoutes) serveVerifyEmailPage(w http.ResponseWriter, r *http.Request, _ *caller) error {
	noReferrer(w)
	token := r.URL.Query().Get("token")
	link, err := h.store.PeekAccountToken(r.Context(), store.PurposeVerifyEmail, token)
	if err != nil {
		return h.badLink(w, r, err)
	}
	user, err := h.store.GetUser(r.Context(), link.UserID)
	if err != nil {
		return h.badLink(w, r, err)
	}
	if !prefersHTML(r) {
		writeJSON(w, http.StatusOK, map[string]string{"email": link.Email, "username": user.Username})
		return nil
	}
	return h.renderMessage(w, r, http.StatusOK, web.MessagePage{
		Heading: "Confirm your email address",
		Message: "Use " + link.Email + " as the email address of the account " + user.Username + "?",
		Action:  h.LoginPath + "/verify-email?token=" + url.QueryEscape(token),
		Button:  "Confirm address",
	})
}

// serveVerifyEmail is POST {login_path}/verify-email: it uses the link of
// the token (in the query, as the page's form sends it, or a form field).
func (h *signInRoutes) serveVerifyEmail(w http.ResponseWriter, r *http.Request, _ *caller) error {
	noReferrer(w)
	if err := r.ParseForm(); err != nil {
		return badForm(err)
	}
	user, err := h.store.VerifyEmail(r.Context(), r.FormValue("token"))
	if err != nil {
		return h.badLink(w, r, err)
	}
	h.logger.Info("email address verified", zap.String("username", user.Username))
	if !prefersHTML(r) {
		writeJSON(w, http.StatusOK, map[string]any{"email": user.Email, "email_verified": true, "username": user.Username})
		return nil
	}
	next := web.Link{Href: h.LoginPath, Text: "Sign in"}
	if sess, err := h.sessionRow(r); err == nil && sess != nil {
		next = web.Link{Href: h.AccountPath, Text: "Go to your account"}
	}
	return h.renderMessage(w, r, http.StatusOK, web.MessagePage{
		Heading: "Email address verified",
		Message: "Your address " + user.Email + " is verified for the account " + user.Username + ".",
		Links:   []web.Link{next, h.homeLink()},
	})
}

// badLink says why a link does not work: expired (a new one can be asked
// for), unknown or used, or an address another account took meanwhile.
func (h *signInRoutes) badLink(w http.ResponseWriter, r *http.Request, err error) error {
	var ref *Refusal
	page := web.MessagePage{Links: []web.Link{{Href: h.AccountPath, Text: "Go to your account"}, h.homeLink()}}
	switch {
	case errors.Is(err, store.ErrTokenExpired):
		ref = refuse(ReasonLinkExpired, "This link has expired")
		page.Heading = "This link has expired"
		page.Message = "Verification links work for 24 hours, and only the latest one sent works."
		page.Detail = "Ask for a new link from your account page: enter the address again there."
	case errors.Is(err, store.ErrTokenNotFound), errors.Is(err, store.ErrUserNotFound):
		ref = refuse(ReasonNoSuchLink, "This link is not valid: it was used already, or a newer one was sent")
		page.Heading = "This link does not work"
		page.Message = "It was used already, a newer link was sent since, or it was not copied whole."
		page.Detail = "If your address is not verified yet, ask for a new link from your account page."
	case errors.Is(err, store.ErrEmailTaken):
		ref = refuse(ReasonEmailTaken, "Another account has had that address verified since the link was sent")
		page.Heading = "That address is taken"
		page.Message = "Another account has had this address verified since the link was sent, so it cannot be yours here."
	default:
		return storeUnavailable(err)
	}
	if !prefersHTML(r) || h.CaddyErrorPages {
		return ref
	}
	page.Status = ref.status
	return h.renderMessage(w, r, ref.status, page)
}
