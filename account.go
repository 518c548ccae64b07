package pgsession

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

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
func (h *Handler) serveOwnSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	sessions, err := h.store.GetUserSessions(r.Context(), c.session.User.ID)
	if err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	writeJSON(w, http.StatusOK, toSessionsJSON(sessions, c.session))
	return nil
}

// serveEndOwnSession ends one of the caller's sessions; ending the current
// one is a logout.
func (h *Handler) serveEndOwnSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	handle := r.PathValue("id")
	ended, err := h.store.DeleteUserSessionByHandle(r.Context(), c.session.User.ID, store.Handle(handle))
	if err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	if !ended {
		writeJSONError(w, http.StatusNotFound, "No such session")
		return nil
	}
	if sameHandle(handle, c.session.Handle) {
		http.SetCookie(w, h.clearCookie(r))
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// sameHandle compares two session handles as the UUIDs they are, so
// "ABCD…" names the same session as "abcd…" (PostgreSQL accepts both).
func sameHandle(a string, b store.Handle) bool { return strings.EqualFold(a, string(b)) }

// serveEndOtherSessions ends every session of the caller but this one.
func (h *Handler) serveEndOtherSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	n, err := h.store.DeleteOtherSessions(r.Context(), c.session.User.ID, c.token)
	if err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
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
func (h *Handler) serveChangePassword(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body passwordChange
	if err := decodeJSONObject(r.Body, &body, "current_password", "new_password"); err != nil {
		answerDecodeError(w, err)
		return nil
	}
	n, err := h.changePassword(r, c, body)
	var inputErr *store.InputError
	var throttled *throttledError
	switch {
	case errors.Is(err, errWrongPassword):
		writeJSONError(w, http.StatusForbidden, "Current password is wrong")
	case errors.As(err, &inputErr):
		writeJSONError(w, http.StatusBadRequest, capitalize(inputErr.Msg))
	case errors.As(err, &throttled):
		h.tooManyAttempts(w, throttled.attempt, "Too many failed logins, try again later")
	case err != nil:
		h.passwordCheckFailed(w, err)
	default:
		writeJSON(w, http.StatusOK, map[string]int64{"ended": n})
	}
	return nil
}

// Why changePassword refused: the current password did not match, or the
// account is past the failed-login limits.
var errWrongPassword = errors.New("current password is wrong")

type throttledError struct{ attempt store.Attempt }

func (e *throttledError) Error() string { return "too many failed logins" }

// changePassword does the work of both password forms and returns the
// number of sessions ended. The check of the current password is reserved
// against the failed-login limits like a login, so a stolen session cannot
// become a way to guess the password. Its errors are errWrongPassword, a
// *throttledError, a *store.InputError for the new password, store.ErrBusy,
// or the database's.
func (h *Handler) changePassword(r *http.Request, c *caller, body passwordChange) (int64, error) {
	if len(body.CurrentPassword) > store.MaxPasswordLength {
		return 0, errWrongPassword
	}
	if err := store.ValidatePassword(body.NewPassword); err != nil {
		return 0, err
	}
	username := c.session.User.Username
	attempt, err := h.store.ReserveLoginAttempt(r.Context(), username, clientIP(r), h.throttle)
	if err != nil {
		return 0, err
	}
	if attempt.Throttled() {
		h.logger.Warn("password change throttled", zap.String("username", username), zap.String("client_ip", clientIP(r)))
		return 0, &throttledError{attempt}
	}
	_, err = h.store.VerifyPassword(r.Context(), username, body.CurrentPassword)
	if errors.Is(err, store.ErrInvalidCredentials) {
		return 0, errWrongPassword
	}
	if err != nil {
		h.releaseAttempt(attempt)
		return 0, err
	}
	if err := h.store.ClearLoginFailures(r.Context(), username); err != nil {
		return 0, err
	}
	n, err := h.store.ChangePassword(r.Context(), c.session.User.ID, body.NewPassword, c.token)
	if err != nil {
		return 0, err
	}
	h.logger.Info("password changed", zap.String("username", username), zap.Int64("sessions_ended", n))
	return n, nil
}

// serveAccountPage shows the user their sessions and the password form; a
// visitor without a session is sent to log in first.
func (h *Handler) serveAccountPage(w http.ResponseWriter, r *http.Request, c *caller) error {
	sess, _, err := h.session(r)
	if err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	if sess == nil {
		http.Redirect(w, r, h.LoginPath+"?redirect="+url.QueryEscape(h.AccountPath), http.StatusSeeOther)
		return nil
	}
	sessions, err := h.store.GetUserSessions(r.Context(), sess.User.ID)
	if err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	page := web.AccountPage{
		Title:        "Your account",
		Username:     sess.User.Username,
		IsAdmin:      sess.User.IsAdmin,
		Action:       h.AccountPath,
		LogoutAction: h.LogoutPath,
		Notice:       accountNotices[r.URL.Query().Get("done")],
		Error:        accountErrors[r.URL.Query().Get("error")],
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
	return h.renderPage(w, r, http.StatusOK, web.DefaultAccountTemplate(), h.pageCSP, page)
}

// The account form answers with a redirect back to the page (so a reload
// does not repeat the action), naming the outcome by a fixed key: the
// page never echoes text from the query string.
var (
	accountNotices = map[string]string{
		"revoked":        "Session signed out",
		"revoked-others": "All other sessions signed out",
		"password":       "Password changed; your other sessions were signed out",
	}
	accountErrors = map[string]string{
		"no-session":       "That session had already ended",
		"wrong-password":   "Current password is wrong",
		"invalid-password": "The new password must be 8 to 1024 characters long",
		"unknown-action":   "Unknown action",
	}
)

// serveAccountForm carries out the account page's forms: revoke one session,
// revoke the others, change the password. It works without JavaScript.
func (h *Handler) serveAccountForm(w http.ResponseWriter, r *http.Request, c *caller) error {
	sess := c.session
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if !errors.As(err, &tooBig) {
			err = errors.New("request body is not a valid form")
		}
		answerDecodeError(w, err)
		return nil
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
			h.storeUnavailable(w, err)
			return nil
		}
		if !ended {
			return back("error", "no-session")
		}
		if sameHandle(handle, sess.Handle) {
			http.SetCookie(w, h.clearCookie(r))
			http.Redirect(w, r, h.LoginPath, http.StatusSeeOther)
			return nil
		}
		return back("done", "revoked")
	case "revoke-others":
		if _, err := h.store.DeleteOtherSessions(r.Context(), sess.User.ID, c.token); err != nil {
			h.storeUnavailable(w, err)
			return nil
		}
		return back("done", "revoked-others")
	case "password":
		_, err := h.changePassword(r, c, passwordChange{
			CurrentPassword: r.PostFormValue("current_password"),
			NewPassword:     r.PostFormValue("new_password"),
		})
		var inputErr *store.InputError
		var throttled *throttledError
		switch {
		case errors.Is(err, errWrongPassword):
			return back("error", "wrong-password")
		case errors.As(err, &inputErr):
			return back("error", "invalid-password")
		case errors.As(err, &throttled):
			h.tooManyAttempts(w, throttled.attempt, "Too many failed logins, try again later")
			return nil
		case err != nil:
			h.passwordCheckFailed(w, err)
			return nil
		default:
			return back("done", "password")
		}
	default:
		return back("error", "unknown-action")
	}
}
