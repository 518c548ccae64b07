package routes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// Email addresses on users, verified by a link: the account page's form
// and POST {api}/email mail a link to the new address, which becomes the
// user's only when the link is used ({login_path}/verify-email, see
// email_verify.go), and tell the old address. Registration and sign-in
// under verify_email are in email_register.go.

// verifyLinkLifetime is how long a verification link works: a day, for a
// mail read the next morning.
const verifyLinkLifetime = 24 * time.Hour

// verifyLinksPerHour caps the verification links one user is sent: a few
// tries at an address, not a mail bomb at someone else's.
var verifyLinksPerHour = store.LinkLimit{Max: 5, Window: time.Hour}

// links mails the links of a site's accounts. It reads the mailer from the
// app's Shared, nil without the global smtp option.
type links struct {
	base
	store  *store.Store
	shared *Shared
}

// mailer is the app's sender, nil without smtp.
func (h *links) mailer() Mailer { return h.shared.Mail }

// linkURL is the absolute address of path?token=token on the site the
// request reached, as the person's browser will open it.
func linkURL(r *http.Request, path, token string) string {
	return requestScheme(r) + "://" + r.Host + path + "?token=" + url.QueryEscape(token)
}

// siteLabel names the site in a mail: its site_name, or its host.
func (h *links) siteLabel(r *http.Request) string {
	if h.SiteName != "" {
		return h.SiteName
	}
	return hostOnly(r.Host)
}

// reserveLink counts a verification link for the user against limits,
// or refuses with 429 past them (and then no link may be sent).
func (h *links) reserveLink(r *http.Request, userID store.UserID, limits ...store.LinkLimit) error {
	wait, err := h.store.ReserveAccountLink(r.Context(), store.PurposeVerifyEmail, userID, limits...)
	switch {
	case err != nil:
		return emailError(err)
	case wait > 0:
		return tooManyLinks(wait)
	}
	return nil
}

// sendVerification mails user a link that makes address theirs, once
// reserveLink let it, and with notifyOld tells their verified address, if
// any other, that a change was asked for.
func (h *links) sendVerification(r *http.Request, user store.User, address string, notifyOld bool) error {
	mail := h.mailer()
	if mail == nil {
		return mailOff()
	}
	token, err := h.store.NewAccountToken(r.Context(), store.PurposeVerifyEmail, user.ID, address, verifyLinkLifetime)
	if err != nil {
		return emailError(err)
	}
	site := h.siteLabel(r)
	mail.Send("verify_email", address, "Confirm your email address for "+site, fmt.Sprintf(
		"Someone, hopefully you, asked to use this address for the account %q on %s.\n\n"+
			"To confirm it, open this link within 24 hours:\n\n%s\n\n"+
			"If it was not you, ignore this message: nothing changes unless the link is opened.\n",
		user.Username, site, linkURL(r, h.LoginPath+"/verify-email", token)))
	if notifyOld && user.EmailVerified && user.Email != "" && user.Email != address {
		mail.Send("email_changed", user.Email, "Your email address on "+site+" is being changed", fmt.Sprintf(
			"Someone signed in to the account %q on %s asked to change its email address from this one to %s.\n\n"+
				"A link was sent to the new address; the address changes only when it is opened.\n\n"+
				"If it was not you, sign in, change your password and sign out your other sessions on the account page: %s\n",
			user.Username, site, address, requestScheme(r)+"://"+r.Host+h.AccountPath))
	}
	h.logger.Info("email verification link sent", zap.String("username", user.Username))
	return nil
}

// mailOff refuses what needs mail on a site without the smtp option.
func mailOff() *Refusal {
	return refuse(ReasonMailOff, "This site sends no mail: an admin sets email addresses")
}

// emailError refuses what the store said of an address: 400 for one it
// would not take, 409 for one another user has, 503 for the rest.
func emailError(err error) error {
	var inputErr *store.InputError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inputErr):
		return badInput(inputErr)
	case errors.Is(err, store.ErrEmailTaken):
		return refuse(ReasonEmailTaken, "Another account has that email address")
	case errors.Is(err, store.ErrUserNotFound):
		return refuse(ReasonNoSuchUser, "No such user")
	default:
		return storeUnavailable(err)
	}
}

// tooManyLinks refuses a link asked for past the limits, until one more
// may be sent.
func tooManyLinks(wait time.Duration) *Refusal {
	ref := refuse(ReasonTooManyLinks, "Too many links were sent to your addresses lately, try again later")
	ref.retryAfter = wait
	return ref
}

// changeEmail mails the signed-in user a link that makes address theirs.
// It returns the address as stored, and false when it is theirs, verified,
// already, so nothing was sent.
func (h *accountRoutes) changeEmail(r *http.Request, c *caller, address string) (string, bool, error) {
	address, err := store.PrepareEmail(address)
	if err != nil {
		return "", false, emailError(err)
	}
	if address == "" {
		return "", false, refuse(ReasonBadRequest, "Give an email address")
	}
	user, err := h.store.GetUser(r.Context(), c.session.User.ID)
	if err != nil {
		return "", false, emailError(err)
	}
	if user.Email == address && user.EmailVerified {
		return address, false, nil
	}
	if h.mailer() == nil {
		return "", false, mailOff()
	}
	// The link is counted before the address is looked up, so the form is
	// no quick way to learn which addresses have accounts.
	if err := h.reserveLink(r, user.ID, verifyLinksPerHour); err != nil {
		return "", false, err
	}
	if owner, err := h.store.UserByEmail(r.Context(), address); err == nil && owner.ID != user.ID {
		return "", false, emailError(store.ErrEmailTaken)
	} else if err != nil && !errors.Is(err, store.ErrUserNotFound) {
		return "", false, storeUnavailable(err)
	}
	if err := h.sendVerification(r, *user, address, true); err != nil {
		return "", false, err
	}
	return address, true, nil
}

// emailChange is the body of POST {api}/email.
type emailChange struct {
	Email string `json:"email"`
}

// serveSetEmail is POST {api}/email: the account page's form for scripts.
// It answers 202 once the link is on its way, 200 when the address is the
// user's already.
func (h *accountRoutes) serveSetEmail(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body emailChange
	if err := request.DecodeJSONObject(r.Body, &body, "email"); err != nil {
		return badBody(err)
	}
	address, sent, err := h.changeEmail(r, c, body.Email)
	if err != nil {
		return err
	}
	if !sent {
		writeJSON(w, http.StatusOK, map[string]any{"email": address, "email_verified": true, "sent": false})
		return nil
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"sent": true, "sent_to": address})
	return nil
}

// serveEmailForm is the account page's "Email address" form.
func (h *accountRoutes) serveEmailForm(r *http.Request, c *caller, back func(key, value string) error) error {
	_, sent, err := h.changeEmail(r, c, r.PostFormValue("email"))
	var ref *Refusal
	switch {
	case err == nil && sent:
		return back("done", "email-sent")
	case err == nil:
		return back("done", "email-same")
	case errors.As(err, &ref) && ref.reason == ReasonEmailTaken:
		return back("error", "email-taken")
	case errors.As(err, &ref) && ref.reason == ReasonMailOff:
		return back("error", "email-no-mail")
	case errors.As(err, &ref) && ref.status == http.StatusBadRequest:
		return back("error", "email-invalid")
	default:
		return err
	}
}

// addEmail puts the "Email address" section on the account page, with e
// when it is the email form's error.
func (h *accountRoutes) addEmail(page *web.AccountPage, user store.User, e accountError) {
	page.Email = &web.AccountEmail{Address: user.Email, Verified: user.EmailVerified, CanChange: h.mailer() != nil}
	if e.form == "email" {
		page.Email.Error = e.text
	}
}

// setEmailAsAdmin sets the address of PATCH {api}/admin/users/{username}:
// an admin's address counts as verified, "" clears it.
func (h *adminRoutes) setEmailAsAdmin(ctx context.Context, c *caller, u *store.User, address *string) error {
	if address == nil {
		return nil
	}
	if err := h.store.SetEmail(ctx, u.ID, *address, true); err != nil {
		return emailError(err)
	}
	h.logger.Info("email address set", zap.String("username", u.Username), zap.Bool("cleared", *address == ""), adminName(c))
	return nil
}
