package pgsession

import (
	"errors"
	"net/http"
	"net/url"
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
			ID:         s.Handle,
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
	ended, err := h.store.DeleteSessionByHandle(r.Context(), handle, c.session.User.ID)
	if err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	if !ended {
		writeJSONError(w, http.StatusNotFound, "No such session")
		return nil
	}
	if handle == c.session.Handle {
		http.SetCookie(w, h.clearCookie(r))
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

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
	if h.throttled(w, r, c.session.User.Username, clientIP(r)) {
		return nil
	}
	n, status, msg, err := h.changePassword(r, c, body)
	switch {
	case errors.Is(err, store.ErrBusy):
		h.hashersBusy(w)
	case err != nil:
		h.storeUnavailable(w, err)
	case status != http.StatusOK:
		writeJSONError(w, status, msg)
	default:
		writeJSON(w, http.StatusOK, map[string]int64{"ended": n})
	}
	return nil
}

// changePassword does the work of both password forms. It returns the
// number of sessions ended, or a status and message for the user, or the
// database's error.
func (h *Handler) changePassword(r *http.Request, c *caller, body passwordChange) (int64, int, string, error) {
	if len(body.CurrentPassword) > store.MaxPasswordLength {
		return 0, http.StatusForbidden, "Current password is wrong", nil
	}
	_, err := h.store.VerifyPassword(r.Context(), c.session.User.Username, body.CurrentPassword)
	if errors.Is(err, store.ErrInvalidCredentials) {
		// A stolen session must not become a way to guess the password.
		if err := h.store.RecordLoginFailure(r.Context(), c.session.User.Username, clientIP(r), h.throttle); err != nil {
			return 0, 0, "", err
		}
		return 0, http.StatusForbidden, "Current password is wrong", nil
	}
	if err != nil {
		return 0, 0, "", err
	}
	n, err := h.store.ChangePassword(r.Context(), c.session.User.ID, body.NewPassword, c.token)
	var inputErr *store.InputError
	switch {
	case errors.As(err, &inputErr):
		return 0, http.StatusBadRequest, capitalize(inputErr.Msg), nil
	case err != nil:
		return 0, 0, "", err
	}
	h.logger.Info("password changed", zap.String("username", c.session.User.Username), zap.Int64("sessions_ended", n))
	return n, http.StatusOK, "", nil
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
			Handle:     s.Handle,
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
		ended, err := h.store.DeleteSessionByHandle(r.Context(), handle, sess.User.ID)
		if err != nil {
			h.storeUnavailable(w, err)
			return nil
		}
		if !ended {
			return back("error", "no-session")
		}
		if handle == sess.Handle {
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
		if h.throttled(w, r, sess.User.Username, clientIP(r)) {
			return nil
		}
		_, status, _, err := h.changePassword(r, c, passwordChange{
			CurrentPassword: r.PostFormValue("current_password"),
			NewPassword:     r.PostFormValue("new_password"),
		})
		switch {
		case errors.Is(err, store.ErrBusy):
			h.hashersBusy(w)
			return nil
		case err != nil:
			h.storeUnavailable(w, err)
			return nil
		case status == http.StatusForbidden:
			return back("error", "wrong-password")
		case status == http.StatusBadRequest:
			return back("error", "invalid-password")
		default:
			return back("done", "password")
		}
	default:
		return back("error", "unknown-action")
	}
}
