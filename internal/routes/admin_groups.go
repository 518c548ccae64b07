package routes

import (
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
)

// The admin API's groups: list, create and delete them, and put users in
// and out of them. A change of membership reaches every server's memory
// through the database's announcements, so it holds from the next request.

// groupJSON is a group as the admin routes show it.
type groupJSON struct {
	Name    string `json:"name"`
	Members int64  `json:"members"`
}

func (h *adminRoutes) serveAdminListGroups(w http.ResponseWriter, r *http.Request, _ *caller) error {
	groups, err := h.store.ListGroups(r.Context())
	if err != nil {
		return storeUnavailable(err)
	}
	return writeJSONList(w, groups, func(g store.Group) groupJSON { return groupJSON{g.Name, g.Members} })
}

func (h *adminRoutes) serveAdminCreateGroup(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body struct {
		Name string `json:"name"`
	}
	if err := request.DecodeJSONObject(r.Body, &body, "name"); err != nil {
		return badBody(err)
	}
	c.auditTarget(body.Name)
	g, err := h.store.CreateGroup(r.Context(), body.Name)
	if err != nil {
		return groupError(err)
	}
	h.logger.Info("group created", zap.String("group", g.Name), adminName(c))
	writeJSON(w, http.StatusCreated, groupJSON{g.Name, 0})
	return nil
}

func (h *adminRoutes) serveAdminDeleteGroup(w http.ResponseWriter, r *http.Request, c *caller) error {
	name := r.PathValue("group")
	members, err := h.store.DeleteGroup(r.Context(), name)
	if err != nil {
		return groupError(err)
	}
	h.logger.Info("group deleted", zap.String("group", name), zap.Int64("members", members), adminName(c))
	writeJSON(w, http.StatusOK, groupJSON{name, members})
	return nil
}

// serveAdminJoinGroup (PUT) and serveAdminLeaveGroup (DELETE) are
// idempotent, as their methods promise: both answer with the user as it
// is afterwards.
func (h *adminRoutes) serveAdminJoinGroup(w http.ResponseWriter, r *http.Request, c *caller) error {
	return h.changeMembership(w, r, c, true)
}

func (h *adminRoutes) serveAdminLeaveGroup(w http.ResponseWriter, r *http.Request, c *caller) error {
	return h.changeMembership(w, r, c, false)
}

func (h *adminRoutes) changeMembership(w http.ResponseWriter, r *http.Request, c *caller, join bool) error {
	u, err := h.adminTarget(r)
	if err != nil {
		return err
	}
	if err := h.changeGroup(r.Context(), c, u, r.PathValue("group"), join); err != nil {
		return err
	}
	if u, err = h.store.GetUser(r.Context(), u.ID); err != nil {
		return userError(err)
	}
	writeJSON(w, http.StatusOK, toAdminUserJSON(*u))
	return nil
}

// groupError is the refusal for what the store says of a group.
func groupError(err error) error {
	var inputErr *store.InputError
	switch {
	case errors.As(err, &inputErr):
		return badInput(inputErr)
	case errors.Is(err, store.ErrGroupNotFound):
		return refuse(ReasonNoSuchGroup, "No such group")
	case errors.Is(err, store.ErrGroupExists):
		return refuse(ReasonGroupExists, "A group with that name already exists")
	case errors.Is(err, store.ErrUserNotFound):
		return refuse(ReasonNoSuchUser, "No such user")
	}
	return storeUnavailable(err)
}
