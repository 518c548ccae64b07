package routes

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// "Forgot password?": a link by mail to set a new password. Asking for a
// link answers the same, at once, whoever is named: the look-up, the link
// and the mail happen afterwards, in the background (resetmail.go), so
// neither the answer nor its time tells whether the account exists, has a
// verified address, or was sent a link lately. Opening the link only reads
// it (a mail scanner may open it first); the form it shows sets the
// password, which signs in as a password does: a second factor is still
// asked for.

const (
	msgLinkSent    = "If an account with a verified address matches, a link is on its way"
	msgLinkExpired = "This link has expired: ask for a new one"
	msgLinkInvalid = "This link was already used or is not valid"
	msgResetOff    = "Password reset by mail is not available on this site"
)

// resetRoutes are the routes of a password reset: asking for a link, and
// using it (reset.go, resetmail.go). They sign the user in through signIn.
type resetRoutes struct {
	base
	*responder
	signIn *signInRoutes
	store  *store.Store
	memory Memory
	// shared gives the mailer, which the app sets up after the site is built.
	shared *Shared
	links  *linkSender
}

func newResetRoutes(b base, rs *responder, in *signInRoutes, shared *Shared) *resetRoutes {
	h := &resetRoutes{base: b, responder: rs, signIn: in, store: shared.Store, memory: shared.Memory, shared: shared}
	h.links = newLinkSender(h)
	return h
}

// mailOn reports whether the site can send links: the global smtp option.
func (h *resetRoutes) mailOn() bool { return h.shared.Mail != nil }

// forgotPath is the page that asks for a link.
func (h *base) forgotPath() string { return h.LoginPath + "/forgot" }

// forgotHref is the login page's "Forgot password?" link: none without mail.
func (h *factors) forgotHref() string {
	if h.shared.Mail == nil {
		return ""
	}
	return h.forgotPath()
}

// withoutReferrer is w with no-referrer set (noReferrer), for a page with
// a link's token in its address.
func withoutReferrer(w http.ResponseWriter) http.ResponseWriter {
	noReferrer(w)
	return w
}

// serveForgotPage shows the form that asks for a link: GET {login_path}/forgot.
func (h *resetRoutes) serveForgotPage(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if !h.mailOn() {
		return refuse(ReasonPasswordResetOff, msgResetOff)
	}
	return h.renderForgotPage(w, r, http.StatusOK, "", "")
}

func (h *resetRoutes) renderForgotPage(w http.ResponseWriter, r *http.Request, status int, login, message string) error {
	return renderPage(withoutReferrer(w), r, status, web.ForgotTemplate(), h.BuiltinPageCSP, web.ForgotPage{
		SiteName: h.SiteName, Action: h.forgotPath(), Login: login, Error: message, LoginHref: h.LoginPath,
	})
}

// forgotBody is what asking for a link reads, from a form or JSON.
type forgotBody struct {
	Login string `json:"login"`
	form  bool
}

// serveForgot asks for a link: POST {login_path}/forgot (form) and POST
// {api}/password/forgot (JSON). It answers after the work that is the same
// for every name (reading the body, the throttles by address and by the
// name typed) and leaves the rest to the link sender.
func (h *resetRoutes) serveForgot(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if !h.mailOn() {
		return refuse(ReasonPasswordResetOff, msgResetOff)
	}
	b, err := readForgot(r)
	var ref *Refusal
	if errors.As(err, &ref) && ref.status == http.StatusBadRequest && b.form {
		return h.renderForgotPage(w, r, ref.status, b.Login, ref.message)
	}
	if err != nil {
		return err
	}
	if err := h.links.throttle(r, b.Login); err != nil {
		return err
	}
	h.links.queue(r, b.Login)
	if !b.form {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "sent"})
		return nil
	}
	return h.renderMessage(withoutReferrer(w), r, http.StatusOK, web.MessagePage{
		Heading: "Check your mail",
		Message: sentence(msgLinkSent),
		Detail: "The link works for " + waitText(int(h.ResetLinkLifetime.Seconds())) +
			". If nothing arrives, check the name or address you typed, or ask the site's administrator.",
		Links: []web.Link{{Href: h.LoginPath, Text: "Back to sign in"}},
	})
}

func readForgot(r *http.Request) (forgotBody, error) {
	var b forgotBody
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/x-www-form-urlencoded" {
		b.form = true
		if err := r.ParseForm(); err != nil {
			return b, badForm(err)
		}
		if len(r.PostForm["login"]) > 1 {
			return b, refuse(ReasonBadRequest, `Field "login" given twice`)
		}
		b.Login = r.PostFormValue("login")
	} else if err := request.DecodeJSONObject(r.Body, &b, "login"); err != nil {
		return b, badBody(err)
	}
	b.Login = strings.TrimSpace(b.Login)
	switch {
	case b.Login == "":
		return b, refuse(ReasonBadRequest, "Enter your username or email address")
	case utf8.RuneCountInString(b.Login) > maxLoginLength:
		return b, refuse(ReasonBadRequest, fmt.Sprintf("That is longer than %d characters", maxLoginLength))
	}
	return b, nil
}

// maxLoginLength bounds a username or address typed into the form: an
// address may be 254 characters.
const maxLoginLength = 254

// resetBody is what setting the new password reads.
type resetBody struct {
	Token    string `json:"token"`
	Password string `json:"password"`
	confirm  string
	form     bool
}

func readReset(r *http.Request) (resetBody, error) {
	var b resetBody
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/x-www-form-urlencoded" {
		b.form = true
		if err := r.ParseForm(); err != nil {
			return b, badForm(err)
		}
		for _, field := range []string{"token", "password", "confirm"} {
			if len(r.PostForm[field]) > 1 {
				return b, refuse(ReasonBadRequest, fmt.Sprintf("Field %q given twice", field))
			}
		}
		b.Token, b.Password, b.confirm = r.PostFormValue("token"), r.PostFormValue("password"), r.PostFormValue("confirm")
	} else if err := request.DecodeJSONObject(r.Body, &b, "token", "password"); err != nil {
		return b, badBody(err)
	}
	if len(b.Password) > store.MaxPasswordLength {
		return b, refuse(ReasonBadRequest, fmt.Sprintf("Password is longer than %d bytes", store.MaxPasswordLength))
	}
	return b, nil
}

// serveResetPage shows the form of a reset link: GET {login_path}/reset?token=….
// It only reads the link, so a mail scanner that opens it uses nothing.
func (h *resetRoutes) serveResetPage(w http.ResponseWriter, r *http.Request, _ *caller) error {
	token := r.URL.Query().Get("token")
	link, err := h.store.PeekAccountToken(r.Context(), store.PurposeReset, token)
	if err != nil {
		return h.refuseLink(w, r, err, true)
	}
	user, err := h.store.GetUser(r.Context(), link.UserID)
	if err != nil {
		return h.refuseLink(w, r, err, true)
	}
	return h.renderResetPage(w, r, http.StatusOK, token, user.Username, "")
}

func (h *resetRoutes) renderResetPage(w http.ResponseWriter, r *http.Request, status int, token, username, message string) error {
	return renderPage(withoutReferrer(w), r, status, web.ResetTemplate(), h.BuiltinPageCSP, web.ResetPage{
		SiteName: h.SiteName, Action: h.LoginPath + "/reset", Token: token, Username: username, Error: message,
		LoginHref: h.LoginPath,
	})
}

// refuseLink answers a link that does not work (or a store that failed):
// a page that says which, with the way to a new link, or a refusal for a
// script and for handle_errors.
func (h *resetRoutes) refuseLink(w http.ResponseWriter, r *http.Request, err error, page bool) error {
	var ref *Refusal
	switch {
	case errors.Is(err, store.ErrTokenExpired):
		ref = refuse(ReasonResetLinkExpired, msgLinkExpired)
	case errors.Is(err, store.ErrTokenNotFound), errors.Is(err, store.ErrUserNotFound):
		ref = refuse(ReasonResetLinkInvalid, msgLinkInvalid)
	default:
		return passwordCheckFailed(err)
	}
	if !page || h.CaddyErrorPages {
		return ref
	}
	heading := "This link was already used or is not valid"
	if ref.reason == ReasonResetLinkExpired {
		heading = "This link has expired"
	}
	links := []web.Link{{Href: h.LoginPath, Text: "Sign in"}}
	if h.mailOn() {
		links = append([]web.Link{{Href: h.forgotPath(), Text: "Ask for a new link"}}, links...)
	}
	return h.renderMessage(withoutReferrer(w), r, ref.status, web.MessagePage{
		Status:  ref.status,
		Heading: heading,
		Message: "A reset link works once, for a short while, and only until the password changes. Ask for a new one.",
		Links:   links,
	})
}

// serveReset sets the new password of a reset link and signs the user in:
// POST {login_path}/reset (form) and POST {api}/password/reset (JSON).
func (h *resetRoutes) serveReset(w http.ResponseWriter, r *http.Request, _ *caller) error {
	b, err := readReset(r)
	if err != nil {
		return err
	}
	if err := h.signIn.cookieCanBeSet(r); err != nil {
		return err
	}
	var inputErr *store.InputError
	message := ""
	if err := store.ValidatePassword(b.Password); errors.As(err, &inputErr) {
		message = capitalize(inputErr.Msg)
	} else if b.form && b.Password != b.confirm {
		message = "The two passwords differ"
	}
	user, err := (*store.User)(nil), error(nil)
	if message == "" {
		user, err = h.store.ResetPassword(r.Context(), b.Token, b.Password)
		if errors.As(err, &inputErr) {
			message = capitalize(inputErr.Msg)
		} else if err != nil {
			return h.refuseLink(w, r, err, b.form || prefersHTML(r))
		}
	}
	if message != "" {
		if !b.form {
			return refuse(ReasonBadRequest, message)
		}
		// The form again, for a link that still works.
		link, err := h.store.PeekAccountToken(r.Context(), store.PurposeReset, b.Token)
		if err != nil {
			return h.refuseLink(w, r, err, true)
		}
		owner, err := h.store.GetUser(r.Context(), link.UserID)
		if err != nil {
			return h.refuseLink(w, r, err, true)
		}
		return h.renderResetPage(w, r, http.StatusBadRequest, b.Token, owner.Username, message)
	}
	h.memory.ForgetUser(user.ID)
	h.logger.Info("password reset by a mailed link", zap.String("username", user.Username), zap.String("client_ip", clientIP(r)))
	return h.signIn.signInAfterReset(w, r, user, b.form)
}

// signInAfterReset signs in a user who has just set their password from a
// reset link, as a right password does: a user with a second factor is
// asked for it, anyone else gets a session and goes home.
func (h *signInRoutes) signInAfterReset(w http.ResponseWriter, r *http.Request, user *store.User, form bool) error {
	c := credentials{Username: user.Username, Redirect: h.Home, form: form}
	switch factors, err := h.store.UserFactors(r.Context(), user.ID); {
	case err != nil:
		return storeUnavailable(err)
	case factors.Any():
		return h.askSecondFactor(w, r, c, user, factors)
	}
	switch err := h.startSession(w, r, user, false); {
	case errors.Is(err, store.ErrCredentialsChanged), errors.Is(err, store.ErrUserNotFound):
		h.signInAttempt(r, user.Username, nil, loginFailure, store.FactorPassword)
		return h.refuseLogin(w, r, c)
	case err != nil:
		return storeUnavailable(err)
	}
	if err := h.store.ClearLoginFailures(r.Context(), user.Username); err != nil {
		h.logger.Warn("clearing failed logins after a password reset", zap.Error(err))
	}
	h.signInAttempt(r, user.Username, user, loginSuccess, store.FactorPassword)
	return h.signedIn(w, r, c, http.StatusOK, user)
}
