package routes

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
)

// The admin routes, under {api_path}/admin/. serveRoute lets a request in
// with the admin token or the session of a user with is_admin; everything
// here may assume one of the two.

// ParseBearer reads one Authorization field value as a bearer credential
// (RFC 6750): the token and true, or false for another scheme or no token.
// The scheme is case-insensitive and may be followed by any run of spaces
// or tabs (RFC 9110 section 11.1), as servers behind the gate may read it,
// so the gate that strips the admin token and the admin routes that check
// it agree on every spelling a client can send.
func ParseBearer(value string) (string, bool) {
	const scheme = "bearer"
	if len(value) <= len(scheme) || !strings.EqualFold(value[:len(scheme)], scheme) {
		return "", false
	}
	rest := value[len(scheme):]
	if rest[0] != ' ' && rest[0] != '\t' {
		return "", false // "Bearerx" is another scheme
	}
	token := strings.Trim(rest, " \t")
	return token, token != ""
}

// userJSON is how a user appears in the JSON routes.
type userJSON struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	IsAdmin  bool     `json:"is_admin"`
	Groups   []string `json:"groups"`
	// The admin routes show when the account was made and changed.
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// They show the user's address too ("" for none), and whether it is verified.
	Email         *string `json:"email,omitempty"`
	EmailVerified *bool   `json:"email_verified,omitempty"`
}

// toUserJSON is a user as /me and the sign-in routes show it; a user in no
// group has "groups":[], so a script need not tell null from empty.
func toUserJSON(u store.User) userJSON {
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	return userJSON{ID: string(u.ID), Username: u.Username, IsAdmin: u.IsAdmin, Groups: groups}
}

// toAdminUserJSON is a user as the admin routes show it.
func toAdminUserJSON(u store.User) userJSON {
	j := toUserJSON(u)
	j.CreatedAt, j.UpdatedAt = u.CreatedAt, u.UpdatedAt
	j.Email, j.EmailVerified = &u.Email, &u.EmailVerified
	return j
}

// adminName names who did something, for the log.
func adminName(c *caller) zap.Field {
	_, name := c.actor()
	return zap.String("admin", name)
}

// userError refuses what the store said about a user: 404 for one that is
// not there, 400 for input it would not take, 409 for a taken name or one
// that looks like a taken name (which the admin is told), 503 (or busy) for
// the rest.
func userError(err error) error {
	var inputErr *store.InputError
	var lookalike *store.LookalikeError
	switch {
	case errors.Is(err, store.ErrUserNotFound):
		return refuse(ReasonNoSuchUser, "No such user")
	case errors.As(err, &inputErr):
		return badInput(inputErr)
	case errors.As(err, &lookalike):
		return refuse(ReasonUsernameLookalike,
			fmt.Sprintf("That name looks like the name of the existing user %q", lookalike.Existing))
	case errors.Is(err, store.ErrUserExists):
		return refuse(ReasonUsernameTaken, "A user with that name already exists")
	default:
		return passwordCheckFailed(err)
	}
}

func (h *adminRoutes) serveAdminListUsers(w http.ResponseWriter, r *http.Request, _ *caller) error {
	users, err := h.store.ListUsers(r.Context())
	if err != nil {
		return storeUnavailable(err)
	}
	return writeJSONList(w, users, toAdminUserJSON)
}

// writeJSONList answers 200 with items, each as view shows it: [] for
// none, never null, so a script need not tell the two apart.
func writeJSONList[T, J any](w http.ResponseWriter, items []T, view func(T) J) error {
	out := make([]J, 0, len(items))
	for _, it := range items {
		out = append(out, view(it))
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

func (h *adminRoutes) serveAdminCreateUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body newUserRequest
	if err := request.DecodeJSONObject(r.Body, &body, "username", "password", "is_admin"); err != nil {
		return badBody(err)
	}
	c.auditTarget(body.Username)
	if body.IsAdmin {
		c.auditDetail("is_admin=true")
	}
	u, err := h.createUser(r.Context(), c, body.Username, body.Password, body.IsAdmin)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toAdminUserJSON(*u))
	return nil
}

func (h *adminRoutes) serveAdminDeleteUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, err := h.adminTarget(r)
	if err != nil {
		return err
	}
	if err := h.deleteUser(r.Context(), c, u); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// userChange is the body of PATCH {api}/admin/users/{username}: each field
// given is changed, the others are left as they are.
type userChange struct {
	Password *string `json:"password"`
	IsAdmin  *bool   `json:"is_admin"`
	Email    *string `json:"email"` // verified, as an admin sets it; "" clears
}

// serveAdminChangeUser sets a user's password, admin rights or address
// (first, so a bad or taken one changes nothing). A new password ends every
// session of the user, logins still in flight included; removing admin
// rights holds from each session's next request.
func (h *adminRoutes) serveAdminChangeUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body userChange
	if err := request.DecodeJSONObject(r.Body, &body, "password", "is_admin", "email"); err != nil {
		return badBody(err)
	}
	if body.Password == nil && body.IsAdmin == nil && body.Email == nil {
		return refuse(ReasonBadRequest, "Nothing to change: give password, is_admin or email")
	}
	// The trail names what was to change, never the new password.
	if body.IsAdmin != nil {
		c.auditDetail("is_admin=%t", *body.IsAdmin)
	}
	if body.Password != nil {
		c.auditDetail("password")
	}
	if body.Password != nil {
		if err := checkNewPassword(*body.Password); err != nil {
			return err
		}
	}
	u, err := h.adminTarget(r)
	if err != nil {
		return err
	}
	if err := h.setEmailAsAdmin(r.Context(), c, u, body.Email); err != nil {
		return err
	}
	out := map[string]any{"ok": true}
	if body.IsAdmin != nil {
		if err := h.setAdmin(r.Context(), c, u, *body.IsAdmin); err != nil {
			return err
		}
	}
	if body.Password != nil {
		n, err := h.setPassword(r.Context(), c, u, *body.Password)
		if err != nil {
			return err
		}
		out["ended"] = n
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// adminTarget finds the user named in the path.
func (h *adminRoutes) adminTarget(r *http.Request) (*store.User, error) {
	u, err := h.store.GetUserByName(r.Context(), r.PathValue("username"))
	if err != nil {
		return nil, userError(err)
	}
	return u, nil
}

func (h *adminRoutes) serveAdminUserSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, err := h.adminTarget(r)
	if err != nil {
		return err
	}
	return h.listSessions(w, r, u.ID, c.session)
}

// serveAdminUserHistory lists a user's latest sign-in attempts.
func (h *adminRoutes) serveAdminUserHistory(w http.ResponseWriter, r *http.Request, _ *caller) error {
	u, err := h.adminTarget(r)
	if err != nil {
		return err
	}
	return h.listSignIns(w, r, u.ID)
}

func (h *adminRoutes) serveAdminEndUserSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, err := h.adminTarget(r)
	if err != nil {
		return err
	}
	n, err := h.endUserSessions(r.Context(), c, u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"ended": n})
	return nil
}

func (h *adminRoutes) serveAdminEndSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.endSession(r.Context(), c, nil, r.PathValue("id")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}
