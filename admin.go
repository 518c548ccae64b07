package pgsession

import (
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/store"
)

// The admin routes, under {api_path}/admin/. serveRoute lets a request in
// with the X-Admin-Token header or the session of a user with is_admin;
// everything here may assume one of the two.

// adminUserJSON is a user as the admin routes show it.
type adminUserJSON struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	IsAdmin   bool      `json:"is_admin"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toAdminUserJSON(u store.User) adminUserJSON {
	return adminUserJSON{ID: string(u.ID), Username: u.Username, IsAdmin: u.IsAdmin, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// adminName names who did something, for the log.
func adminName(c *caller) zap.Field {
	if c.admin {
		return zap.String("admin", "admin token")
	}
	return zap.String("admin", c.session.User.Username)
}

func (h *Handler) serveAdminListUsers(w http.ResponseWriter, r *http.Request, _ *caller) error {
	users, err := h.store.ListUsers(r.Context())
	if err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	out := make([]adminUserJSON, 0, len(users))
	for _, u := range users {
		out = append(out, toAdminUserJSON(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// newUserRequest is the body of POST {api}/admin/users.
type newUserRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	IsAdmin  bool   `json:"is_admin"`
}

func (h *Handler) serveAdminCreateUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body newUserRequest
	if err := decodeJSONObject(r.Body, &body, "username", "password", "is_admin"); err != nil {
		answerDecodeError(w, err)
		return nil
	}
	u, err := h.store.CreateUser(r.Context(), body.Username, body.Password, body.IsAdmin)
	var inputErr *store.InputError
	switch {
	case errors.Is(err, store.ErrBusy):
		h.hashersBusy(w)
	case errors.As(err, &inputErr):
		writeJSONError(w, http.StatusBadRequest, capitalize(inputErr.Msg))
	case errors.Is(err, store.ErrUserExists):
		writeJSONError(w, http.StatusConflict, "A user with that name already exists")
	case err != nil:
		h.storeUnavailable(w, err)
	default:
		h.logger.Info("user created", zap.String("username", u.Username), zap.Bool("is_admin", u.IsAdmin), adminName(c))
		writeJSON(w, http.StatusCreated, toAdminUserJSON(*u))
	}
	return nil
}

func (h *Handler) serveAdminDeleteUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	name := r.PathValue("username")
	err := h.store.DeleteUser(r.Context(), name)
	switch {
	case errors.Is(err, store.ErrUserNotFound):
		writeJSONError(w, http.StatusNotFound, "No such user")
	case err != nil:
		h.storeUnavailable(w, err)
	default:
		h.logger.Info("user deleted", zap.String("username", name), adminName(c))
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}
	return nil
}

// userChange is the body of PATCH {api}/admin/users/{username}: each field
// given is changed, the others are left as they are.
type userChange struct {
	Password *string `json:"password"`
	IsAdmin  *bool   `json:"is_admin"`
}

// serveAdminChangeUser sets a user's password or admin rights. A new
// password ends every session of the user, logins still in flight
// included; removing admin rights holds from each session's next request.
func (h *Handler) serveAdminChangeUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body userChange
	if err := decodeJSONObject(r.Body, &body, "password", "is_admin"); err != nil {
		answerDecodeError(w, err)
		return nil
	}
	if body.Password == nil && body.IsAdmin == nil {
		writeJSONError(w, http.StatusBadRequest, "Nothing to change: give password or is_admin")
		return nil
	}
	if body.Password != nil {
		if err := store.ValidatePassword(*body.Password); err != nil {
			writeJSONError(w, http.StatusBadRequest, capitalize(err.Error()))
			return nil
		}
	}
	u := h.adminTarget(w, r)
	if u == nil {
		return nil
	}
	out := map[string]any{"ok": true}
	if body.IsAdmin != nil {
		err := h.store.SetAdmin(r.Context(), u.ID, *body.IsAdmin)
		switch {
		case errors.Is(err, store.ErrUserNotFound):
			writeJSONError(w, http.StatusNotFound, "No such user")
			return nil
		case err != nil:
			h.storeUnavailable(w, err)
			return nil
		}
		h.logger.Info("admin rights changed", zap.String("username", u.Username), zap.Bool("is_admin", *body.IsAdmin), adminName(c))
	}
	if body.Password != nil {
		n, err := h.store.ChangePassword(r.Context(), u.ID, *body.Password, "")
		var inputErr *store.InputError
		switch {
		case errors.Is(err, store.ErrUserNotFound):
			writeJSONError(w, http.StatusNotFound, "No such user")
			return nil
		case errors.As(err, &inputErr):
			writeJSONError(w, http.StatusBadRequest, capitalize(inputErr.Msg))
			return nil
		case err != nil:
			h.passwordCheckFailed(w, err)
			return nil
		}
		h.logger.Info("password set", zap.String("username", u.Username), zap.Int64("sessions_ended", n), adminName(c))
		out["ended"] = n
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// adminTarget finds the user named in the path, answering 404 or 503 itself.
func (h *Handler) adminTarget(w http.ResponseWriter, r *http.Request) *store.User {
	u, err := h.store.GetUserByName(r.Context(), r.PathValue("username"))
	switch {
	case errors.Is(err, store.ErrUserNotFound):
		writeJSONError(w, http.StatusNotFound, "No such user")
		return nil
	case err != nil:
		h.storeUnavailable(w, err)
		return nil
	}
	return u
}

func (h *Handler) serveAdminUserSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	u := h.adminTarget(w, r)
	if u == nil {
		return nil
	}
	sessions, err := h.store.GetUserSessions(r.Context(), u.ID)
	if err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	writeJSON(w, http.StatusOK, toSessionsJSON(sessions, c.session))
	return nil
}

func (h *Handler) serveAdminEndUserSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	u := h.adminTarget(w, r)
	if u == nil {
		return nil
	}
	n, err := h.store.DeleteUserSessions(r.Context(), u.ID)
	if err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	h.logger.Info("sessions ended", zap.String("username", u.Username), zap.Int64("count", n), adminName(c))
	writeJSON(w, http.StatusOK, map[string]int64{"ended": n})
	return nil
}

func (h *Handler) serveAdminEndSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	ended, err := h.store.DeleteSessionByHandle(r.Context(), store.Handle(r.PathValue("id")))
	switch {
	case err != nil:
		h.storeUnavailable(w, err)
	case !ended:
		writeJSONError(w, http.StatusNotFound, "No such session")
	default:
		h.logger.Info("session ended", zap.String("session", r.PathValue("id")), adminName(c))
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}
	return nil
}
