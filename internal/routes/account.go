package routes

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"

	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// sessionJSON is how a session appears in the JSON routes: named by its
// handle, never by its token or the token's hash.
type sessionJSON struct {
	ID         string    `json:"id"`
	UserAgent  string    `json:"user_agent"`
	IP         string    `json:"ip"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Current    bool      `json:"current"`
}

// expiry is when a session ends if nothing more happens: its absolute end
// or, sooner, its idle end.
func expiry(s store.Session) time.Time {
	if s.IdleExpiresAt != nil && s.IdleExpiresAt.Before(s.ExpiresAt) {
		return *s.IdleExpiresAt
	}
	return s.ExpiresAt
}

func toSessionsJSON(sessions []store.Session, current *store.Session) []sessionJSON {
	out := make([]sessionJSON, 0, len(sessions))
	for _, s := range sessions {
		out = append(out, sessionJSON{
			ID:         string(s.Handle),
			UserAgent:  s.UserAgent,
			IP:         s.IP,
			CreatedAt:  s.CreatedAt,
			LastSeenAt: s.LastSeenAt,
			ExpiresAt:  expiry(s),
			Current:    current != nil && s.ID == current.ID,
		})
	}
	return out
}

// serveOwnSessions lists the caller's live sessions.
func (h *accountRoutes) serveOwnSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	return h.listSessions(w, r, c.session.User.ID, c.session)
}

// listSessions answers with a user's live sessions, marking current.
func (h *sessions) listSessions(w http.ResponseWriter, r *http.Request, userID store.UserID, current *store.Session) error {
	sessions, err := h.store.GetUserSessions(r.Context(), userID)
	if err != nil {
		return storeUnavailable(err)
	}
	writeJSON(w, http.StatusOK, toSessionsJSON(sessions, current))
	return nil
}

// serveEndOwnSession ends one of the caller's sessions; ending the current
// one is a logout.
func (h *accountRoutes) serveEndOwnSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	handle := r.PathValue("id")
	ended, err := h.store.DeleteUserSessionByHandle(r.Context(), c.session.User.ID, store.Handle(handle))
	if err != nil {
		return storeUnavailable(err)
	}
	if !ended {
		return refuse(ReasonNoSuchSession, "No such session")
	}
	h.memory.ForgetUser(c.session.User.ID)
	if sameHandle(handle, c.session.Handle) {
		h.dropCookie(w, r)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// sameHandle compares two session handles as the UUIDs they are, so
// "ABCD…" names the same session as "abcd…" (PostgreSQL accepts both).
func sameHandle(a string, b store.Handle) bool { return strings.EqualFold(a, string(b)) }

// serveEndOtherSessions ends every session of the caller but this one.
func (h *accountRoutes) serveEndOtherSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	n, err := h.store.DeleteOtherSessions(r.Context(), c.session.User.ID, c.token)
	if err != nil {
		return storeUnavailable(err)
	}
	h.memory.ForgetUser(c.session.User.ID)
	writeJSON(w, http.StatusOK, map[string]int64{"ended": n})
	return nil
}

// passwordChange is the body of POST {api}/password.
type passwordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// serveChangePassword changes the caller's password after checking the
// current one, and ends their other sessions.
func (h *accountRoutes) serveChangePassword(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body passwordChange
	if err := request.DecodeJSONObject(r.Body, &body, "current_password", "new_password"); err != nil {
		return badBody(err)
	}
	n, err := h.changePassword(r, c, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"ended": n})
	return nil
}

// changePassword does the work of both password forms and returns the
// number of sessions ended, or a refusal: 403 for a wrong current password,
// 400 for a refused new one, 429 past the limits. The check of the current
// password is reserved against the failed-login limits like a login, so a
// stolen session cannot become a way to guess the password.
func (h *accountRoutes) changePassword(r *http.Request, c *caller, body passwordChange) (int64, error) {
	var inputErr *store.InputError
	if len(body.CurrentPassword) <= store.MaxPasswordLength {
		if err := store.ValidatePassword(body.NewPassword); errors.As(err, &inputErr) {
			return 0, badInput(inputErr)
		}
	}
	// A user made by an identity provider has no password to give; the
	// row read for this request says so, from the database.
	if c.session.User.HasPassword || body.CurrentPassword != "" {
		if err := h.checkCurrentPassword(r, c, body.CurrentPassword); err != nil {
			return 0, err
		}
	}
	username := c.session.User.Username
	n, err := h.store.ChangePassword(r.Context(), c.session.User.ID, body.NewPassword, c.token)
	switch {
	case errors.As(err, &inputErr):
		return 0, badInput(inputErr)
	case err != nil:
		return 0, passwordCheckFailed(err)
	}
	h.memory.ForgetUser(c.session.User.ID)
	h.logger.Info("password changed", zap.String("username", username), zap.Int64("sessions_ended", n))
	return n, nil
}

// checkCurrentPassword checks the caller's password before a change to
// their credentials: 403 when it is wrong, 429 past the failed-login limits.
// The check is reserved against those limits like a login, so a stolen
// session cannot become a way to guess the password.
func (h *accountRoutes) checkCurrentPassword(r *http.Request, c *caller, password string) error {
	wrong := refuse(ReasonWrongPassword, "Current password is wrong")
	if len(password) > store.MaxPasswordLength {
		return wrong
	}
	username := c.session.User.Username
	attempt, err := h.store.ReserveLoginAttempt(r.Context(), username, clientIP(r), h.Throttle)
	if err != nil {
		return storeUnavailable(err)
	}
	if attempt.Throttled() {
		h.logger.Warn("password check throttled", zap.String("username", username), zap.String("client_ip", clientIP(r)))
		return tooManyAttempts(attempt, msgTooManyFailures)
	}
	_, err = h.store.VerifyPassword(r.Context(), username, password)
	if errors.Is(err, store.ErrInvalidCredentials) {
		return wrong
	}
	if err != nil {
		h.releaseAttempt(attempt)
		return passwordCheckFailed(err)
	}
	if err := h.store.ClearLoginFailures(r.Context(), username); err != nil {
		return storeUnavailable(err)
	}
	return nil
}

// serveAccountPage shows the user their sessions and the password form; a
// visitor without a session is sent to log in first.
func (h *accountRoutes) serveAccountPage(w http.ResponseWriter, r *http.Request, c *caller) error {
	sess, err := h.sessionRow(r)
	if err != nil {
		return err
	}
	if sess == nil {
		http.Redirect(w, r, h.LoginPath+"?redirect="+url.QueryEscape(h.AccountPath), http.StatusSeeOther)
		return nil
	}
	page, err := h.accountPage(r, sess)
	if err != nil {
		return err
	}
	return renderPage(w, r, http.StatusOK, web.DefaultAccountTemplate(), h.BuiltinPageCSP, page)
}

// accountPage is the account page of sess's user, with the notice or the
// error its query names.
func (h *accountRoutes) accountPage(r *http.Request, sess *store.Session) (web.AccountPage, error) {
	sessions, err := h.store.GetUserSessions(r.Context(), sess.User.ID)
	if err != nil {
		return web.AccountPage{}, storeUnavailable(err)
	}
	page := web.AccountPage{
		Title:        "Your account",
		SiteName:     h.SiteName,
		Home:         h.Home,
		Username:     sess.User.Username,
		IsAdmin:      sess.User.IsAdmin,
		AdminPage:    h.AdminPath,
		Action:       h.AccountPath,
		LogoutAction: h.LogoutPath,
		Notice:       accountNotices[r.URL.Query().Get("done")],
	}
	if e, ok := accountErrors[r.URL.Query().Get("error")]; ok {
		switch e.form {
		case "sessions":
			page.SessionsError = e.text
		case "password":
			page.PasswordError, page.PasswordErrorField = e.text, e.field
		case "passkeys":
			page.PasskeysError = e.text
		case "identities":
			page.IdentitiesError = e.text
		case "email":
			// addEmail shows it by the form.
		case "tokens":
			// addTokens shows it by the create form.
		default:
			page.Error = e.text
		}
	}
	for _, s := range sessions {
		page.Sessions = append(page.Sessions, web.AccountSession{
			Handle:     string(s.Handle),
			Device:     web.DescribeUserAgent(s.UserAgent),
			UserAgent:  s.UserAgent,
			IP:         s.IP,
			CreatedAt:  s.CreatedAt,
			LastSeenAt: s.LastSeenAt,
			ExpiresAt:  expiry(s),
			Current:    s.ID == sess.ID,
		})
	}
	if err := h.addPasskeys(r, &page, sess.User.ID); err != nil {
		return page, err
	}
	if err := h.addTokens(r, &page, sess.User); err != nil {
		return page, err
	}
	if err := h.addIdentities(r, &page, sess.User); err != nil {
		return page, err
	}
	h.addEmail(&page, sess.User, accountErrors[r.URL.Query().Get("error")])
	if err := h.addSignIns(r, &page, sess.User.ID); err != nil {
		return page, err
	}
	if err := h.addTwoStep(r, &page, sess); err != nil {
		return page, err
	}
	if e, ok := accountErrors[r.URL.Query().Get("error")]; ok && e.form == "two-step" && page.TwoStep != nil {
		page.TwoStep.Error = e.text
	}
	return page, nil
}

// The account form answers with a redirect back to the page (so a reload
// does not repeat the action), naming the outcome by a fixed key: the
// page never echoes text from the query string.
var (
	accountNotices = map[string]string{
		"revoked":           "Session signed out",
		"revoked-others":    "All other sessions signed out",
		"password":          "Password changed; your other sessions were signed out",
		"totp-off":          "Two-step sign-in is off; your other sessions were signed out",
		"passkey-added":     "Passkey added; your other sessions were signed out",
		"passkey-removed":   "Passkey removed; your other sessions were signed out",
		"token-revoked":     "API token revoked",
		"identity-linked":   "Account linked: you can sign in with it",
		"identity-unlinked": "Account unlinked",
		"email-sent":        "We sent a link to the new address: open it to make the address yours",
		"email-same":        "That is your address already",
	}
	accountErrors = map[string]accountError{
		"no-session":           {"That session had already ended", "sessions", ""},
		"wrong-password":       {"Current password is wrong", "password", "current_password"},
		"invalid-password":     {"The new password must be 8 to 1024 characters long", "password", "new_password"},
		"unknown-action":       {"Unknown action", "", ""},
		"wrong-code":           {"That code is not right: check the app's clock and try the next one", "two-step", ""},
		"no-totp-setup":        {"No authenticator is being set up: start again", "two-step", ""},
		"totp-password":        {"Current password is wrong", "two-step", ""},
		"no-passkey":           {"That passkey had already been removed", "passkeys", ""},
		"passkey-last":         {"That passkey is your only way to sign in: set a password or link an account first", "passkeys", ""},
		"no-token":             {"That API token had already been revoked", "tokens", ""},
		"token-name":           {"A token's name must be 1 to 64 printable characters, without spaces at either end", "tokens", "token_name"},
		"token-name-taken":     {"You already have an API token of that name", "tokens", "token_name"},
		"token-paths":          {"Each path must start with / or * and be at most 256 bytes, and a token takes at most 32", "tokens", "token_paths"},
		"token-expiry":         {"Choose when the token expires from the list", "tokens", ""},
		"token-admin":          {"Only an admin can create a token with admin rights", "tokens", ""},
		"no-provider":          {"No such identity provider", "identities", ""},
		"provider-unavailable": {"That identity provider is unavailable right now: try again in a few minutes", "identities", ""},
		"last-sign-in":         {"That is your only way to sign in: set a password or link another account first", "identities", ""},
		"no-identity":          {"That account had already been unlinked", "identities", ""},
		"email-invalid":        {"That is not an email address: a name, @ and a domain, without spaces", "email", ""},
		"email-taken":          {"Another account has that email address", "email", ""},
		"email-no-mail":        {"This site sends no mail, so an admin sets your address", "email", ""},
	}
)

// accountError is an error of the account page's forms, shown by the part
// of the page it belongs to.
type accountError struct {
	text  string
	form  string // "sessions" (the list and its buttons), "password", "two-step", "passkeys", "tokens", or "" for the top of the page
	field string // the password or token form's field at fault, by its name
}

// serveAccountForm carries out the account page's forms: revoke one session,
// revoke the others, change the password, the second factors, the API
// tokens. It works without JavaScript.
func (h *accountRoutes) serveAccountForm(w http.ResponseWriter, r *http.Request, c *caller) error {
	sess := c.session
	if err := r.ParseForm(); err != nil {
		return badForm(err)
	}
	back := func(key, value string) error {
		http.Redirect(w, r, h.AccountPath+"?"+key+"="+value, http.StatusSeeOther)
		return nil
	}
	switch r.PostFormValue("action") {
	case "revoke":
		handle := r.PostFormValue("handle")
		ended, err := h.store.DeleteUserSessionByHandle(r.Context(), sess.User.ID, store.Handle(handle))
		if err != nil {
			return storeUnavailable(err)
		}
		if !ended {
			return back("error", "no-session")
		}
		h.memory.ForgetUser(sess.User.ID)
		if sameHandle(handle, sess.Handle) {
			return h.signedOut(w, r)
		}
		return back("done", "revoked")
	case "revoke-others":
		if _, err := h.store.DeleteOtherSessions(r.Context(), sess.User.ID, c.token); err != nil {
			return storeUnavailable(err)
		}
		h.memory.ForgetUser(sess.User.ID)
		return back("done", "revoked-others")
	case "password":
		_, err := h.changePassword(r, c, passwordChange{
			CurrentPassword: r.PostFormValue("current_password"),
			NewPassword:     r.PostFormValue("new_password"),
		})
		// The page shows the person's own mistakes; anything else is refused.
		var ref *Refusal
		switch {
		case err == nil:
			return back("done", "password")
		case errors.As(err, &ref) && ref.reason == ReasonWrongPassword:
			return back("error", "wrong-password")
		case errors.As(err, &ref) && ref.status == http.StatusBadRequest:
			return back("error", "invalid-password")
		default:
			return err
		}
	case "totp-setup", "totp-confirm", "totp-disable":
		return h.serveTwoStepForm(w, r, c, back)
	case "token-create", "token-revoke":
		return h.serveTokenForm(w, r, c, back)
	case "link-identity", "unlink-identity":
		return h.serveIdentityForm(w, r, c, back)
	case "email":
		return h.serveEmailForm(r, c, back)
	case "remove-passkey":
		_, err := h.removePasskey(r, c, r.PostFormValue("passkey"))
		var ref *Refusal
		switch {
		case err == nil:
			return back("done", "passkey-removed")
		case errors.As(err, &ref) && ref.status == http.StatusNotFound:
			return back("error", "no-passkey")
		case errors.As(err, &ref) && ref.reason == ReasonLastSignInMethod:
			return back("error", "passkey-last")
		default:
			return err
		}
	default:
		return back("error", "unknown-action")
	}
}
