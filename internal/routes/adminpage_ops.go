package routes

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/store"
)

// The admin operations that the admin API and the admin page share: each
// changes the store, drops what the server's memory held of the user, and
// logs who did it, so the two ways in cannot drift apart. Each returns a
// refusal for what went wrong.

// createUser makes a user with a password.
func (h *adminRoutes) createUser(ctx context.Context, c *caller, name, password string, isAdmin bool) (*store.User, error) {
	u, err := h.store.CreateUser(ctx, name, password, isAdmin)
	if err != nil {
		return nil, userError(err)
	}
	h.logger.Info("user created", zap.String("username", u.Username), zap.Bool("is_admin", u.IsAdmin), adminName(c))
	return u, nil
}

// deleteUser removes a user, their sessions with them.
func (h *adminRoutes) deleteUser(ctx context.Context, c *caller, u *store.User) error {
	if err := h.store.DeleteUser(ctx, u.Username); err != nil {
		return userError(err)
	}
	h.memory.ForgetUser(u.ID)
	h.logger.Info("user deleted", zap.String("username", u.Username), adminName(c))
	return nil
}

// setAdmin grants or removes admin rights, from each session's next request.
func (h *adminRoutes) setAdmin(ctx context.Context, c *caller, u *store.User, isAdmin bool) error {
	if err := h.store.SetAdmin(ctx, u.ID, isAdmin); err != nil {
		return userError(err)
	}
	h.memory.ForgetUser(u.ID)
	h.logger.Info("admin rights changed", zap.String("username", u.Username), zap.Bool("is_admin", isAdmin), adminName(c))
	return nil
}

// checkNewPassword refuses, with 400, a password the store would not take,
// before anything else is looked up.
func checkNewPassword(password string) error {
	var inputErr *store.InputError
	if err := store.ValidatePassword(password); errors.As(err, &inputErr) {
		return badInput(inputErr)
	}
	return nil
}

// setPassword gives a user a new password and ends every session of
// theirs, logins still in flight included; it returns how many ended.
func (h *adminRoutes) setPassword(ctx context.Context, c *caller, u *store.User, password string) (int64, error) {
	if err := checkNewPassword(password); err != nil {
		return 0, err
	}
	n, err := h.store.ChangePassword(ctx, u.ID, password, "")
	if err != nil {
		return 0, userError(err)
	}
	h.memory.ForgetUser(u.ID)
	h.logger.Info("password set", zap.String("username", u.Username), zap.Int64("sessions_ended", n), adminName(c))
	return n, nil
}

// endUserSessions ends every session of a user and returns how many.
func (h *adminRoutes) endUserSessions(ctx context.Context, c *caller, u *store.User) (int64, error) {
	n, err := h.store.DeleteUserSessions(ctx, u.ID)
	if err != nil {
		return 0, storeUnavailable(err)
	}
	h.memory.ForgetUser(u.ID)
	h.logger.Info("sessions ended", zap.String("username", u.Username), zap.Int64("count", n), adminName(c))
	return n, nil
}

// endSession ends the session of handle: owner's, or with owner nil
// anyone's; 404 when no such live session is.
func (h *adminRoutes) endSession(ctx context.Context, c *caller, owner *store.User, handle string) error {
	var whose store.UserID
	var err error
	if owner == nil {
		whose, err = h.store.DeleteSessionByHandle(ctx, store.Handle(handle))
	} else {
		var ended bool
		if ended, err = h.store.DeleteUserSessionByHandle(ctx, owner.ID, store.Handle(handle)); ended {
			whose = owner.ID
		}
	}
	switch {
	case err != nil:
		return storeUnavailable(err)
	case whose == "":
		return refuse(ReasonNoSuchSession, "No such session")
	}
	h.memory.ForgetUser(whose)
	h.logger.Info("session ended", zap.String("session", handle), adminName(c))
	return nil
}

// resetSecondFactors removes a user's authenticator, recovery codes and
// passkeys, for someone who lost them, and ends their sessions.
func (h *adminRoutes) resetSecondFactors(ctx context.Context, c *caller, u *store.User) (int64, error) {
	n, err := h.store.ResetSecondFactors(ctx, u.ID)
	if errors.Is(err, store.ErrUserNotFound) {
		return 0, refuse(ReasonNoSuchUser, "No such user")
	}
	if err != nil {
		return 0, storeUnavailable(err)
	}
	h.memory.ForgetUser(u.ID)
	h.logger.Info("second factors reset", zap.String("username", u.Username), zap.Int64("sessions_ended", n), adminName(c))
	return n, nil
}

// changeGroup puts a user in a group (join) or takes them out; both are
// idempotent.
func (h *adminRoutes) changeGroup(ctx context.Context, c *caller, u *store.User, group string, join bool) error {
	change, done := h.store.RemoveFromGroups, "user left a group"
	if join {
		change, done = h.store.AddToGroups, "user joined a group"
	}
	if err := change(ctx, u.ID, group); err != nil {
		return groupError(err)
	}
	h.memory.ForgetUser(u.ID)
	h.logger.Info(done, zap.String("username", u.Username), zap.String("group", group), adminName(c))
	return nil
}
