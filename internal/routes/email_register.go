package routes

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// verify_email on: a registration gives an address, is created with it
// unverified and mailed a link, and starts no session; a sign-in of a user
// whose address is not verified is refused after the password checked out,
// and mailed a fresh link now and then. A user with no address at all (made
// before, by an admin or by the command line) signs in as ever.

// resendEvery is how often a refused sign-in mails a fresh link.
var resendEvery = store.LinkLimit{Max: 1, Window: 5 * time.Minute}

// readRegistration reads a registration's body: with verify_email on, the
// email field too, which it then requires.
func (h *signInRoutes) readRegistration(r *http.Request) (credentials, error) {
	if !h.VerifyEmail {
		return readCredentials(r)
	}
	c, err := readCredentials(r, "email")
	if err == nil && c.Email == "" {
		err = refuse(ReasonBadRequest, "Give your email address: a link to it finishes the registration")
	}
	if err == nil && h.mailer() == nil {
		err = mailOff()
	}
	return c, err
}

// createAccount creates the user of a registration, with its address
// (unverified) under verify_email.
func (h *signInRoutes) createAccount(ctx context.Context, c credentials) (*store.User, error) {
	if !h.VerifyEmail {
		return h.store.CreateUser(ctx, c.Username, c.Password, false)
	}
	return h.store.CreateUserWithEmail(ctx, c.Username, c.Password, c.Email)
}

// registered answers a registration that created user: signed in at once,
// or, under verify_email, told to open the link mailed to the address.
func (h *signInRoutes) registered(w http.ResponseWriter, r *http.Request, c credentials, user *store.User) error {
	if !h.VerifyEmail {
		if err := h.startSession(w, r, user, c.Remember); err != nil {
			return storeUnavailable(err)
		}
		return h.signedIn(w, r, c, http.StatusCreated, user)
	}
	if err := h.reserveLink(r, user.ID, verifyLinksPerHour); err != nil {
		return err
	}
	if err := h.sendVerification(r, *user, user.Email, false); err != nil {
		return err
	}
	message := "Check your mail: open the link we sent to " + user.Email + " to finish, then sign in."
	if !c.form {
		writeJSON(w, http.StatusCreated, registeredJSON{userJSON: toUserJSON(*user), Email: user.Email, Message: message})
		return nil
	}
	return h.renderMessage(w, r, http.StatusCreated, web.MessagePage{
		Heading: "Check your mail",
		Message: "Your account " + user.Username + " is made. We sent a link to " + user.Email + ": open it to finish.",
		Detail:  "The link works for 24 hours. Then sign in with your username and password.",
		Links:   []web.Link{{Href: h.LoginPath, Text: "Sign in"}, h.homeLink()},
	})
}

// registeredJSON answers a registration that waits for its address.
type registeredJSON struct {
	userJSON
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
	Message       string `json:"message"`
}

// unverified is a user whose address is not verified, which verify_email
// keeps from signing in.
func (h *signInRoutes) unverified(user *store.User) bool {
	return h.VerifyEmail && user.Email != "" && !user.EmailVerified
}

// refuseUnverified refuses the sign-in of a user whose password was right
// but whose address is not verified: 403, with a fresh link mailed unless
// one went out in the last minutes. The right password forgives the failed
// logins, as a sign-in would.
func (h *signInRoutes) refuseUnverified(w http.ResponseWriter, r *http.Request, c credentials, user *store.User) error {
	if err := h.store.ClearLoginFailures(r.Context(), c.Username); err != nil {
		return storeUnavailable(err)
	}
	h.logger.Info("login refused: email address not verified", zap.String("username", user.Username),
		zap.String("client_ip", clientIP(r)))
	err := h.reserveLink(r, user.ID, resendEvery, verifyLinksPerHour)
	if err == nil {
		err = h.sendVerification(r, *user, user.Email, false)
	}
	var ref *Refusal
	if err != nil && !(errors.As(err, &ref) && (ref.reason == ReasonTooManyLinks || ref.reason == ReasonMailOff)) {
		return err
	}
	const message = "Your email address is not verified yet: open the link we mailed to it " +
		"(a new one is sent at most every few minutes), then sign in again"
	if c.form {
		return h.renderLoginPage(w, r, http.StatusForbidden, c, message)
	}
	return refuse(ReasonEmailNotVerified, message)
}
