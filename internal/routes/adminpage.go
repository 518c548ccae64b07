package routes

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// The admin page at admin_path: the users, one user's page, and the
// confirmations of what cannot be undone. Its pages open only for the
// session of a signed-in admin (a browser page has no business with a
// token); its forms are POSTs to routes of audience admin, which the
// router's cross-origin protection guards like every other write, and each
// answers with a redirect back to a page that says what was done.

// addAdminPage adds the admin page's routes, unless admin_path is off.
func (h *Site) addAdminPage() {
	base, p, rt := h.AdminPath, h.adminPage, &h.router
	if base == "" {
		return
	}
	get, post, user := http.MethodGet, http.MethodPost, base+"/users/{username}"
	rt.add(get, base, anyone, p.page(p.serveUsers))
	rt.add(get, user, anyone, p.page(p.serveUser))
	rt.add(get, base+"/invitations", anyone, p.page(p.serveInvitations))
	rt.add(get, base+"/audit", anyone, p.page(p.serveAudit))
	// The forms are recorded in the audit trail under the admin API's names.
	for _, f := range []struct {
		path, action string
		serve        func(http.ResponseWriter, *http.Request, *caller) error
	}{
		{base + "/users", "user.create", p.serveCreateUser},
		{user + "/admin", "user.change", p.userAction(p.serveSetAdmin)},
		{user + "/password", "user.change", p.userAction(p.serveSetPassword)},
		{user + "/groups/join", "group.join", p.userAction(p.serveJoinGroup)},
		{user + "/groups/leave", "group.leave", p.userAction(p.serveLeaveGroup)},
		{user + "/sessions/end", "session.end", p.userAction(p.serveEndSession)},
		{user + "/sessions/end-all", "user.sessions_end", p.userAction(p.serveEndSessions)},
		{user + "/second-factors/reset", "user.second_factors_reset", p.userAction(p.serveResetFactors)},
		{user + "/delete", "user.delete", p.userAction(p.serveDeleteUser)},
		{base + "/invitations", "invitation.create", p.serveCreateInvitation},
		{base + "/invitations/{id}/revoke", "invitation.revoke", p.serveRevokeInvitation},
	} {
		rt.addAction(post, f.path, admin, f.action, p.action(f.serve))
	}
}

// page serves one of the admin page's pages to a signed-in admin. A
// browser without a session is sent to sign in and come back; a user who
// is no admin is refused with a page that says so.
func (h *adminPageRoutes) page(serve func(http.ResponseWriter, *http.Request, *caller) error) func(http.ResponseWriter, *http.Request, *caller) error {
	return func(w http.ResponseWriter, r *http.Request, _ *caller) error {
		res, ref := h.Resolve(r, Demand{From: FromDatabase, Admin: true}, time.Now())
		if ref != nil {
			if ref.reason == ReasonNotAdmin {
				return h.notAdminPage(w, r, res.User().Username)
			}
			return h.RefuseGated(w, r, ref)
		}
		return serve(w, r, &caller{session: res.row, token: res.Token})
	}
}

// notAdminPage refuses the admin page to a user who is no admin: a
// browser is told who is signed in, and may sign out to sign in as an
// admin, as the forbidden page offers.
func (h *adminPageRoutes) notAdminPage(w http.ResponseWriter, r *http.Request, username string) error {
	ref := refuse(ReasonNotAdmin, "The admin page is for admins: an admin can give you admin rights")
	if h.CaddyErrorPages || !prefersHTML(r) {
		return h.Answer(w, r, ref)
	}
	return h.renderMessage(w, r, ref.status, web.MessagePage{Status: ref.status, Heading: "Not allowed",
		Message: "You are signed in as " + username + ", who is no admin: the admin page is for admins.",
		Detail:  "An admin can give you admin rights. If you have an admin account, sign out and sign in with it.",
		Action:  h.LogoutPath, Button: "Sign out", Links: []web.Link{h.homeLink()}})
}

// action serves one of the admin page's forms. The router let the request
// in as an admin's; the page takes only a session, so a script holding the
// admin token or an API token uses the admin API instead.
func (h *adminPageRoutes) action(serve func(http.ResponseWriter, *http.Request, *caller) error) func(http.ResponseWriter, *http.Request, *caller) error {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		if c.admin || c.apiToken || c.session == nil {
			return refuse(ReasonAdminPageNeedsSession, "The admin page takes the session of a signed-in admin, not a token: use the admin API")
		}
		if err := r.ParseForm(); err != nil {
			return badForm(err)
		}
		return serve(w, r, c)
	}
}

// frame is what every admin page shows around its part.
func (h *adminPageRoutes) frame(c *caller, title, section string) web.AdminFrame {
	return web.AdminFrame{Title: title, SiteName: h.SiteName, Home: h.Home, Base: h.AdminPath, AccountPath: h.AccountPath,
		LogoutAction: h.LogoutPath, Admin: c.session.User.Username, Section: section, ShowInvitations: true, ShowAudit: true}
}

// render shows an admin page.
func (h *adminPageRoutes) render(w http.ResponseWriter, r *http.Request, status int, tmpl *template.Template, page any) error {
	return renderPage(w, r, status, tmpl, h.BuiltinPageCSP, page)
}

// userHref is the page of the user named name.
func (h *adminPageRoutes) userHref(name string) string {
	return h.AdminPath + "/users/" + url.PathEscape(name)
}

// done redirects to path after an action, naming its outcome by a fixed
// key of adminNotices, so that a reload does not repeat the action and the
// page never shows words from its query string.
func done(w http.ResponseWriter, r *http.Request, path, key string) error {
	http.Redirect(w, r, path+"?done="+key, http.StatusSeeOther)
	return nil
}

// adminNotices are the outcomes of the admin page's actions; {user} is the
// name of the user whose page shows it.
var adminNotices = map[string]string{
	"created":            "{user} was created",
	"deleted":            "The user was deleted, and their sessions ended",
	"admin-on":           "{user} is now an admin",
	"admin-off":          "{user} is no longer an admin",
	"password":           "Password set; {user}’s sessions were ended",
	"joined":             "{user} was added to the group",
	"left":               "{user} was taken out of the group",
	"session-ended":      "The session was ended",
	"sessions-ended":     "All of {user}’s sessions were ended",
	"factors-reset":      "{user}’s second factors were removed, and their sessions ended",
	"invitation-made":    "Invitation made",
	"invitation-mailed":  "Invitation made and mailed",
	"invitation-revoked": "Invitation revoked",
}

// notice is the outcome the query of r names, about the user named user.
func notice(r *http.Request, user string) string {
	return strings.ReplaceAll(adminNotices[r.URL.Query().Get("done")], "{user}", user)
}

// formMistake is a refusal of a form that the page shows by the form,
// with its status: the person's own mistake (400, 404, 409, 410). Anything else
// (the database down, the server busy) is answered as the refusal it is.
func formMistake(err error) (*Refusal, bool) {
	var ref *Refusal
	if errors.As(err, &ref) && (ref.status == http.StatusBadRequest || ref.status == http.StatusNotFound ||
		ref.status == http.StatusConflict || ref.status == http.StatusGone) {
		return ref, true
	}
	return nil, false
}

// serveUsers lists the users, those whose name contains ?q= when it is given.
func (h *adminPageRoutes) serveUsers(w http.ResponseWriter, r *http.Request, c *caller) error {
	page, err := h.usersPage(r, c)
	if err != nil {
		return err
	}
	page.Notice = notice(r, "")
	return h.render(w, r, http.StatusOK, web.AdminUsersTemplate(), page)
}

// usersPage is the list of users, searched by ?q=.
func (h *adminPageRoutes) usersPage(r *http.Request, c *caller) (web.AdminUsersPage, error) {
	query := strings.TrimSpace(r.URL.Query().Get("q"))
	page := web.AdminUsersPage{AdminFrame: h.frame(c, "Users", "users"), Query: query, CreateAction: h.AdminPath + "/users"}
	users, err := h.store.ListUsers(r.Context())
	if err != nil {
		return page, storeUnavailable(err)
	}
	// One query counts every user's sessions, rather than one a user.
	top, err := h.store.TopUsers(r.Context(), len(users))
	if err != nil {
		return page, storeUnavailable(err)
	}
	sessions := make(map[string]int64, len(top))
	for _, t := range top {
		sessions[t.Username] = t.Sessions
	}
	for _, u := range users {
		if query != "" && !strings.Contains(strings.ToLower(u.Username), strings.ToLower(query)) {
			continue
		}
		page.Users = append(page.Users, web.AdminUserRow{Username: u.Username, Href: h.userHref(u.Username), IsAdmin: u.IsAdmin,
			Groups: u.Groups, Email: u.Email, CreatedAt: u.CreatedAt, Sessions: sessions[u.Username]})
		page.ShowEmail = page.ShowEmail || u.Email != ""
	}
	return page, nil
}

// serveCreateUser makes a user from the create form and goes to their
// page; a name or password the store refuses shows the list again, with
// the name filled in and the field at fault marked.
func (h *adminPageRoutes) serveCreateUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	name, password := r.PostFormValue("username"), r.PostFormValue("password")
	isAdmin := r.PostFormValue("is_admin") == "on"
	c.auditTarget(name)
	if isAdmin {
		c.auditDetail("is_admin=true")
	}
	field := "password"
	err := checkNewPassword(password)
	if err == nil {
		field = "username"
		var u *store.User
		if u, err = h.createUser(r.Context(), c, name, password, isAdmin); err == nil {
			return done(w, r, h.userHref(u.Username), "created")
		}
	}
	ref, ok := formMistake(err)
	if !ok {
		return err
	}
	page, err := h.usersPage(r, c)
	if err != nil {
		return err
	}
	page.Error, page.NewUsername, page.NewIsAdmin, page.NewErrorField = sentence(ref.message), name, isAdmin, field
	return h.render(w, r, ref.status, web.AdminUsersTemplate(), page)
}
