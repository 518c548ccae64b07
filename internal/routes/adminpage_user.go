package routes

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// One user's page on the admin page, {admin_path}/users/{username}, and
// its forms: admin rights, a new password, groups, sessions, second
// factors and deletion. Ending all sessions, removing the second factors
// and deleting the user ask first, on a page of their own.

// adminPageSignIns is how many sign-in attempts a user's page shows.
const adminPageSignIns = 20

// serveUser shows the user named in the path.
func (h *adminPageRoutes) serveUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	u, err := h.adminTarget(r)
	if err != nil {
		return h.mistake(w, r, c, nil, err, "")
	}
	page, err := h.userPage(r, c, u)
	if err != nil {
		return err
	}
	page.Notice = notice(r, u.Username)
	return h.render(w, r, http.StatusOK, web.AdminUserTemplate(), page)
}

// userPage is the page of user u, as the store has them now.
func (h *adminPageRoutes) userPage(r *http.Request, c *caller, u *store.User) (web.AdminUserPage, error) {
	href := h.userHref(u.Username)
	page := web.AdminUserPage{AdminFrame: h.frame(c, u.Username, "users"), Username: u.Username, IsAdmin: u.IsAdmin,
		Self: u.ID == c.session.User.ID, HasPassword: u.HasPassword, CreatedAt: u.CreatedAt,
		Email: u.Email, EmailVerified: u.EmailVerified, Groups: u.Groups,
		ShowSignIns: h.keepsHistory,
		Actions: web.AdminUserActions{Admin: href + "/admin", Password: href + "/password", Join: href + "/groups/join",
			Leave: href + "/groups/leave", EndSession: href + "/sessions/end", EndSessions: href + "/sessions/end-all",
			ResetFactors: href + "/second-factors/reset", Delete: href + "/delete"}}
	ctx := r.Context()
	groups, err := h.store.ListGroups(ctx)
	if err != nil {
		return page, storeUnavailable(err)
	}
	page.Actions.GroupsMissing = len(groups) == 0
	for _, g := range groups {
		if !slices.Contains(u.Groups, g.Name) {
			page.OtherGroups = append(page.OtherGroups, g.Name)
		}
	}
	factors, err := h.store.UserFactors(ctx, u.ID)
	if err != nil {
		return page, storeUnavailable(err)
	}
	page.SecondFactor = describeFactors(factors)
	sessions, err := h.store.GetUserSessions(ctx, u.ID)
	if err != nil {
		return page, storeUnavailable(err)
	}
	for _, s := range sessions {
		page.Sessions = append(page.Sessions, web.AccountSession{Handle: string(s.Handle), Device: web.DescribeUserAgent(s.UserAgent),
			UserAgent: s.UserAgent, IP: s.IP, CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt, ExpiresAt: expiry(s),
			Current: s.ID == c.session.ID})
	}
	if page.ShowSignIns {
		signIns, err := h.store.SignInHistory(ctx, u.ID, adminPageSignIns)
		if err != nil {
			return page, storeUnavailable(err)
		}
		for _, s := range signIns {
			page.SignIns = append(page.SignIns, web.AccountSignIn{At: s.At, Device: web.DescribeUserAgent(s.UserAgent),
				UserAgent: s.UserAgent, IP: s.IP, Outcome: s.Outcome, Factor: s.Factor})
		}
	}
	return page, nil
}

// describeFactors says what second factors a user has, "" for none.
func describeFactors(f store.Factors) string {
	var parts []string
	if f.TOTP {
		parts = append(parts, fmt.Sprintf("an authenticator app (%s left)", plural(f.RecoveryCodes, "recovery code")))
	}
	if f.Passkeys > 0 {
		parts = append(parts, plural(f.Passkeys, "passkey"))
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return parts[0] + " and " + parts[1]
}

// mistake shows a form's refusal on the page it came from, with its
// status: the user's page, or, for a user not there (u nil), the list of
// users. field names the form field at fault. What is no mistake of the
// person's is answered as the refusal it is.
func (h *adminPageRoutes) mistake(w http.ResponseWriter, r *http.Request, c *caller, u *store.User, err error, field string) error {
	ref, ok := formMistake(err)
	if !ok {
		return err
	}
	if u != nil {
		// The user as they are now, which may be gone.
		fresh, err := h.store.GetUserByName(r.Context(), u.Username)
		if err == nil {
			page, err := h.userPage(r, c, fresh)
			if err != nil {
				return err
			}
			page.Error, page.ErrorField = sentence(ref.message), field
			return h.render(w, r, ref.status, web.AdminUserTemplate(), page)
		}
		if ref, ok = formMistake(userError(err)); !ok {
			return userError(err)
		}
	}
	page, err := h.usersPage(r, c)
	if err != nil {
		return err
	}
	page.Error = sentence(ref.message)
	return h.render(w, r, ref.status, web.AdminUsersTemplate(), page)
}

// userAction serves a form about the user named in the path, once found.
func (h *adminPageRoutes) userAction(serve func(http.ResponseWriter, *http.Request, *caller, *store.User) error) func(http.ResponseWriter, *http.Request, *caller) error {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		u, err := h.adminTarget(r)
		if err != nil {
			return h.mistake(w, r, c, nil, err, "")
		}
		return serve(w, r, c, u)
	}
}

// confirmed tells whether a destructive form was confirmed (confirm=yes);
// when it was not, it has answered with the page that asks, whose Cancel
// leads to cancel.
func (h *adminPageRoutes) confirmed(w http.ResponseWriter, r *http.Request, c *caller, cancel, question, detail, button string) (bool, error) {
	if r.PostFormValue("confirm") == "yes" {
		return true, nil
	}
	// The trail keeps the question too, saying nothing was done.
	c.auditDetail("confirmation asked, nothing done")
	page := web.AdminConfirmPage{AdminFrame: h.frame(c, question, "users"), Question: question, Detail: detail,
		Action: r.URL.EscapedPath(), Button: button, Cancel: cancel}
	return false, h.render(w, r, http.StatusOK, web.AdminConfirmTemplate(), page)
}

func (h *adminPageRoutes) serveSetAdmin(w http.ResponseWriter, r *http.Request, c *caller, u *store.User) error {
	on := r.PostFormValue("admin")
	if on != "on" && on != "off" {
		return h.mistake(w, r, c, u, refuse(ReasonBadRequest, "Choose whether the user is an admin: admin=on or off"), "")
	}
	c.auditDetail("is_admin=%t", on == "on")
	if err := h.setAdmin(r.Context(), c, u, on == "on"); err != nil {
		return h.mistake(w, r, c, u, err, "")
	}
	if on == "off" && u.ID == c.session.User.ID {
		// No longer an admin, the page would refuse them: their own
		// account page is where they can still go.
		http.Redirect(w, r, h.AccountPath, http.StatusSeeOther)
		return nil
	}
	return done(w, r, h.userHref(u.Username), "admin-"+on)
}

func (h *adminPageRoutes) serveSetPassword(w http.ResponseWriter, r *http.Request, c *caller, u *store.User) error {
	c.auditDetail("password")
	if _, err := h.setPassword(r.Context(), c, u, r.PostFormValue("password")); err != nil {
		return h.mistake(w, r, c, u, err, "password")
	}
	return done(w, r, h.userHref(u.Username), "password")
}

func (h *adminPageRoutes) serveJoinGroup(w http.ResponseWriter, r *http.Request, c *caller, u *store.User) error {
	return h.changeGroupForm(w, r, c, u, true)
}

func (h *adminPageRoutes) serveLeaveGroup(w http.ResponseWriter, r *http.Request, c *caller, u *store.User) error {
	return h.changeGroupForm(w, r, c, u, false)
}

func (h *adminPageRoutes) changeGroupForm(w http.ResponseWriter, r *http.Request, c *caller, u *store.User, join bool) error {
	group := r.PostFormValue("group")
	var err error = refuse(ReasonBadRequest, "Choose a group")
	if group != "" {
		c.auditTarget(u.Username + " → " + group)
		err = h.changeGroup(r.Context(), c, u, group, join)
	}
	if err != nil {
		return h.mistake(w, r, c, u, err, "group")
	}
	if join {
		return done(w, r, h.userHref(u.Username), "joined")
	}
	return done(w, r, h.userHref(u.Username), "left")
}

func (h *adminPageRoutes) serveEndSession(w http.ResponseWriter, r *http.Request, c *caller, u *store.User) error {
	if handle := r.PostFormValue("session"); len(handle) <= 64 {
		c.auditDetail("session=%s", handle)
	}
	if err := h.endSession(r.Context(), c, u, r.PostFormValue("session")); err != nil {
		return h.mistake(w, r, c, u, err, "")
	}
	return done(w, r, h.userHref(u.Username), "session-ended")
}

func (h *adminPageRoutes) serveEndSessions(w http.ResponseWriter, r *http.Request, c *caller, u *store.User) error {
	ok, err := h.confirmed(w, r, c, h.userHref(u.Username), "End all of "+u.Username+"’s sessions?",
		u.Username+" is signed out on every device and browser, and has to sign in again.", "End all sessions")
	if !ok {
		return err
	}
	if _, err := h.endUserSessions(r.Context(), c, u); err != nil {
		return err
	}
	return done(w, r, h.userHref(u.Username), "sessions-ended")
}

func (h *adminPageRoutes) serveResetFactors(w http.ResponseWriter, r *http.Request, c *caller, u *store.User) error {
	ok, err := h.confirmed(w, r, c, h.userHref(u.Username), "Remove "+u.Username+"’s second factors?",
		"This removes their authenticator app, recovery codes and passkeys, and ends their sessions: they sign in with "+
			"the password alone until they set up a second factor again.", "Remove second factors")
	if !ok {
		return err
	}
	if _, err := h.resetSecondFactors(r.Context(), c, u); err != nil {
		return h.mistake(w, r, c, u, err, "")
	}
	return done(w, r, h.userHref(u.Username), "factors-reset")
}

func (h *adminPageRoutes) serveDeleteUser(w http.ResponseWriter, r *http.Request, c *caller, u *store.User) error {
	ok, err := h.confirmed(w, r, c, h.userHref(u.Username), "Delete "+u.Username+"?",
		"This ends their sessions and removes the account with its passkeys, API tokens and sign-in history. It cannot be undone.",
		"Delete "+u.Username)
	if !ok {
		return err
	}
	if err := h.deleteUser(r.Context(), c, u); err != nil {
		return h.mistake(w, r, c, nil, err, "")
	}
	return done(w, r, h.AdminPath, "deleted")
}
