package routes

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pgsession/caddy-pgsession/store"
)

// The plugin's own routes: login and logout, the account page and its
// API, and the admin API. This file says which exist and who may use them.

// maxBodyBytes caps the body of the handler's own POST routes; a login
// needs a few hundred bytes.
const maxBodyBytes = 64 << 10

// audience is who may use a route.
type audience int

const (
	anyone      audience = iota // login, logout, register, the login page
	withSession                 // a logged-in user: me, their sessions, their password
	admin                       // X-Admin-Token or an admin's session
)

// addRoutes sets up the handler's own routes.
func (h *Site) addRoutes() {
	get, post, del := http.MethodGet, http.MethodPost, http.MethodDelete
	api := h.APIPath
	rt := &h.router
	in, acct, adm := h.signIn, h.account, h.admin
	rt.add(get, h.LoginPath, anyone, in.serveLoginPage)
	rt.add(post, h.LoginPath, anyone, in.serveLogin)
	rt.add(get, h.LogoutPath, anyone, in.serveLogoutPage)
	rt.add(post, h.LogoutPath, anyone, in.serveLogout)
	rt.add(post, api+"/login", anyone, in.serveLogin)
	rt.add(post, api+"/logout", anyone, in.serveLogout)
	rt.add(post, api+"/register", anyone, in.serveRegister)
	rt.add(get, api+"/me", withSession, in.serveMe)
	// The forward-auth check resolves the session of the request it is
	// asked about, not its own.
	rt.add(get, api+"/verify", anyone, h.verify.serveVerify)

	rt.add(get, api+"/sessions", withSession, acct.serveOwnSessions)
	rt.add(del, api+"/sessions/{id}", withSession, acct.serveEndOwnSession)
	rt.add(post, api+"/sessions/revoke-others", withSession, acct.serveEndOtherSessions)
	rt.add(post, api+"/password", withSession, acct.serveChangePassword)
	rt.add(get, api+"/history", withSession, acct.serveOwnHistory)
	rt.add(post, api+"/login/second-factor", anyone, in.serveSecondFactor)
	rt.add(post, h.LoginPath+"/second-factor", anyone, in.serveSecondFactor)
	rt.add(post, api+"/totp/setup", withSession, acct.serveTOTPSetup)
	rt.add(post, api+"/totp/confirm", withSession, acct.serveTOTPConfirm)
	rt.add(del, api+"/totp", withSession, acct.serveTOTPDisable)
	rt.add(post, api+"/passkeys/register/begin", withSession, acct.serveRegisterPasskeyBegin)
	rt.add(post, api+"/passkeys/register/finish", withSession, acct.serveRegisterPasskeyFinish)
	rt.add(get, api+"/passkeys", withSession, acct.serveOwnPasskeys)
	rt.add(del, api+"/passkeys/{id}", withSession, acct.serveRemovePasskey)
	rt.add(post, api+"/passkeys/login/begin", anyone, in.serveLoginPasskeyBegin)
	rt.add(post, api+"/passkeys/login/finish", anyone, in.serveLoginPasskeyFinish)
	rt.add(get, api+"/tokens", withSession, acct.serveOwnTokens)
	rt.add(post, api+"/tokens", withSession, acct.serveCreateToken)
	rt.add(del, api+"/tokens/{id}", withSession, acct.serveRevokeToken)
	rt.add(get, h.LoginPath+"/step-up", withSession, in.serveStepUpPage)
	rt.add(post, h.LoginPath+"/step-up", withSession, in.serveStepUp)
	rt.add(post, api+"/step-up", withSession, in.serveStepUp)
	rt.add(post, api+"/passkeys/step-up/begin", withSession, in.serveStepUpPasskeyBegin)
	rt.add(post, api+"/passkeys/step-up/finish", withSession, in.serveStepUpPasskeyFinish)
	rt.add(get, h.LoginPath+"/with/{provider}", anyone, in.serveProviderStart)
	rt.add(get, h.LoginPath+"/callback/{provider}", anyone, in.serveProviderCallback)
	rt.add(get, h.AccountPath, anyone, acct.serveAccountPage)
	rt.add(post, h.AccountPath, withSession, acct.serveAccountForm)
	// Email addresses and the links that verify them (email.go, email_verify.go).
	rt.add(post, api+"/email", withSession, acct.serveSetEmail)
	rt.add(get, h.LoginPath+"/verify-email", anyone, in.serveVerifyEmailPage)
	rt.add(post, h.LoginPath+"/verify-email", anyone, in.serveVerifyEmail)

	// The admin API; each action is recorded in the audit trail by its name.
	rt.audit = newAuditTrail(h.store, h.logger)
	patch, put := http.MethodPatch, http.MethodPut
	rt.add(get, api+"/admin/users", admin, adm.serveAdminListUsers)
	rt.addAction(post, api+"/admin/users", admin, "user.create", adm.serveAdminCreateUser)
	rt.addAction(del, api+"/admin/users/{username}", admin, "user.delete", adm.serveAdminDeleteUser)
	rt.addAction(patch, api+"/admin/users/{username}", admin, "user.change", adm.serveAdminChangeUser)
	rt.add(get, api+"/admin/users/{username}/sessions", admin, adm.serveAdminUserSessions)
	rt.addAction(del, api+"/admin/users/{username}/sessions", admin, "user.sessions_end", adm.serveAdminEndUserSessions)
	rt.add(get, api+"/admin/users/{username}/history", admin, adm.serveAdminUserHistory)
	rt.addAction(del, api+"/admin/users/{username}/second-factors", admin, "user.second_factors_reset", adm.serveAdminResetSecondFactors)
	rt.addAction(del, api+"/admin/sessions/{id}", admin, "session.end", adm.serveAdminEndSession)
	rt.add(get, api+"/admin/groups", admin, adm.serveAdminListGroups)
	rt.addAction(post, api+"/admin/groups", admin, "group.create", adm.serveAdminCreateGroup)
	rt.addAction(del, api+"/admin/groups/{group}", admin, "group.delete", adm.serveAdminDeleteGroup)
	rt.addAction(put, api+"/admin/users/{username}/groups/{group}", admin, "group.join", adm.serveAdminJoinGroup)
	rt.addAction(del, api+"/admin/users/{username}/groups/{group}", admin, "group.leave", adm.serveAdminLeaveGroup)
	rt.add(get, api+"/admin/audit", admin, adm.serveAdminAudit)
	// Invitations to create an account (invitation.go, invitation_admin.go).
	rt.add(get, h.LoginPath+"/invitation", anyone, in.serveInvitationPage)
	rt.add(post, h.LoginPath+"/invitation", anyone, in.serveAcceptInvitation)
	rt.add(get, api+"/admin/invitations", admin, adm.serveAdminListInvitations)
	rt.addAction(post, api+"/admin/invitations", admin, "invitation.create", adm.serveAdminCreateInvitation)
	rt.addAction(del, api+"/admin/invitations/{id}", admin, "invitation.revoke", adm.serveAdminRevokeInvitation)
	// A password reset by mail (reset.go).
	rt.add(get, h.LoginPath+"/forgot", anyone, h.reset.serveForgotPage)
	rt.add(post, h.LoginPath+"/forgot", anyone, h.reset.serveForgot)
	rt.add(post, api+"/password/forgot", anyone, h.reset.serveForgot)
	rt.add(get, h.LoginPath+"/reset", anyone, h.reset.serveResetPage)
	rt.add(post, h.LoginPath+"/reset", anyone, h.reset.serveReset)
	rt.add(post, api+"/password/reset", anyone, h.reset.serveReset)
	h.addAdminPage()
	rt.enrolment(api+"/me", h.AccountPath, api+"/totp/setup", api+"/totp/confirm")
}

// serveRoute checks method, origin and access for an own route, then serves
// it; what it returns is for answer.
func (h *Site) serveRoute(w http.ResponseWriter, r *http.Request, rte *route, c *caller, params map[string]string, allowed []string, adminToken string) error {
	w.Header().Set("Cache-Control", "no-store")
	if rte == nil {
		return methodNotAllowed(w, allowed)
	}
	for k, v := range params {
		r.SetPathValue(k, v)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := h.originGuard.Check(r); err != nil {
			return refuse(ReasonCrossOrigin, "Cross-origin request refused")
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	}

	_, viaAPIToken := bearerAPIToken(r)
	if viaAPIToken && (rte.access == withSession || slices.Equal(rte.pattern, splitPath(h.AccountPath))) {
		// Only the admin API takes a token; these routes manage the
		// user's credentials, which a leaked token must not reach.
		return notWithAPIToken(&caller{apiToken: true})
	}
	if rte.access == admin && !viaAPIToken {
		// A bearer token other than the admin token (or an API token) is
		// still an attempt at it here, and refused as such.
		for _, v := range r.Header.Values("Authorization") {
			if bearer, ok := ParseBearer(v); ok && adminToken == "" {
				adminToken = bearer
			}
		}
		if adminToken != "" {
			if h.AdminToken == nil || subtle.ConstantTimeCompare([]byte(adminToken), h.AdminToken) != 1 {
				return refuse(ReasonInvalidAdminToken, "Invalid admin token")
			}
			c.admin = true
			return rte.serve(w, r, c)
		}
		if h.AdminToken == nil {
			// Without a token, the admin routes exist only once an admin does.
			exists, err := h.store.AnyAdmin(r.Context())
			if err != nil {
				return storeUnavailable(err)
			}
			if !exists {
				return refuse(ReasonNoAdmin, "Admin routes are off: set admin_token or create an admin user")
			}
		}
	}
	if rte.access != anyone {
		// Only the admin routes take an API token, and only one with the
		// admin scope of an admin (whose IsAdmin says both).
		res, ref := h.Resolve(r, Demand{From: FromDatabase, Admin: rte.access == admin, BeforeSecondFactor: rte.enrolment,
			APITokens: rte.access == admin}, time.Now())
		if ref != nil {
			if !res.IsZero() {
				c.deniedID, c.deniedName = res.User().ID, res.User().Username
			}
			return ref
		}
		c.session, c.token = res.row, res.Token
		if res.ViaAPIToken() {
			c.apiToken = true
			u := res.User()
			c.session = &store.Session{User: store.User{ID: u.ID, Username: u.Username, IsAdmin: u.IsAdmin}}
		}
		h.identify(r, res.Session)
	}
	return rte.serve(w, r, c)
}

// methodNotAllowed refuses a method the path does not take, naming those it does.
func methodNotAllowed(w http.ResponseWriter, allowed []string) *Refusal {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	return refuse(ReasonMethodNotAllowed, "Method not allowed")
}

// route is one of the handler's own routes. Pattern segments in braces
// ({id}) match one path segment and reach the handler through r.PathValue.
type route struct {
	method  string
	pattern []string
	access  audience
	// enrolment marks the routes a user may use before setting up the
	// second factor that second_factor required asks of them.
	enrolment bool
	serve     func(http.ResponseWriter, *http.Request, *caller) error
	// action names the route in the audit trail; "" for a route that is
	// not recorded (any GET, or a route not for admins).
	action string
}

// caller is who is making a request to an own route, as far as it is known.
type caller struct {
	session *store.Session // nil without a live session
	token   string         // the session cookie's value, if any
	admin   bool           // authenticated by the admin token
	// apiToken is set when the request was authenticated by an API token
	// rather than a cookie.
	apiToken bool
	// via names the way an admin request came in when it is neither the
	// site's admin token nor a session: "caddy admin endpoint".
	via string
	// audit is what the handler adds to its audit entry; nil on a route
	// that is not recorded.
	audit *auditNote
	// deniedID and deniedName are the user an admin route refused, for
	// the audit trail.
	deniedID   store.UserID
	deniedName string
}

// router matches the handler's own routes. Requests for any other path fall
// through to the gate, so an application may use paths next to the plugin's.
type router struct {
	routes []route
	// firsts are the routes' first path segments: a path starting with
	// none of them, as almost every request to the site does, is no route,
	// and is told so without splitting it.
	firsts []string
	audit  *auditTrail // records the admin actions (audit.go)
}

// add registers a route. An admin route other than a GET is recorded in
// the audit trail under its method and path; addAction gives it a name.
func (rt *router) add(method, path string, acc audience, serve func(http.ResponseWriter, *http.Request, *caller) error) {
	rt.addAction(method, path, acc, method+" "+path, serve)
}

// addAction registers a route whose admin actions the audit trail records
// as action ("user.delete").
func (rt *router) addAction(method, path string, acc audience, action string, serve func(http.ResponseWriter, *http.Request, *caller) error) {
	if acc != admin || method == http.MethodGet || method == http.MethodHead {
		action = ""
	} else {
		serve = rt.recorded(action, serve)
	}
	rt.routes = append(rt.routes, route{method: method, pattern: splitPath(path), access: acc, serve: serve, action: action})
	if first := splitPath(path)[0]; !slices.Contains(rt.firsts, first) {
		rt.firsts = append(rt.firsts, first)
	}
	if method == http.MethodGet {
		rt.routes = append(rt.routes, route{method: http.MethodHead, pattern: splitPath(path), access: acc, serve: serve})
	}
}

// enrolment lets a user without a second factor use the routes of paths
// under second_factor required: what setting one up needs.
func (rt *router) enrolment(paths ...string) {
	for i := range rt.routes {
		for _, p := range paths {
			if slices.Equal(rt.routes[i].pattern, splitPath(p)) {
				rt.routes[i].enrolment = true
			}
		}
	}
}

// match finds the route for r. When the path matches but the method does
// not, it returns the methods the path allows instead.
func (rt *router) match(r *http.Request) (*route, map[string]string, []string) {
	path := r.URL.EscapedPath()
	first, _, _ := strings.Cut(strings.TrimLeft(path, "/"), "/")
	if !slices.Contains(rt.firsts, first) {
		return nil, nil, nil
	}
	segments := splitPath(path)
	var allowed []string
	for i := range rt.routes {
		rte := &rt.routes[i]
		params, ok := matchSegments(rte.pattern, segments)
		if !ok {
			continue
		}
		if rte.method == r.Method {
			return rte, params, nil
		}
		allowed = append(allowed, rte.method)
	}
	sort.Strings(allowed)
	return nil, nil, allowed
}

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

func matchSegments(pattern, segments []string) (map[string]string, bool) {
	if len(pattern) != len(segments) {
		return nil, false
	}
	var params map[string]string
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			v, err := url.PathUnescape(segments[i])
			if err != nil || v == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[p[1:len(p)-1]] = v
			continue
		}
		if p != segments[i] {
			return nil, false
		}
	}
	return params, true
}

// Routes lists the site's own routes as the reference does, "GET
// /api/auth/me"; every GET route answers HEAD too, and is listed once.
func (h *Site) Routes() []string {
	var list []string
	for _, rte := range h.router.routes {
		if rte.method != http.MethodHead {
			list = append(list, rte.method+" /"+strings.Join(rte.pattern, "/"))
		}
	}
	return list
}

// Route serves r when it is one of the site's own routes, and says whether
// it was; adminToken is the admin token the gate took out of the request.
func (h *Site) Route(w http.ResponseWriter, r *http.Request, adminToken string) (bool, error) {
	rte, params, allowed := h.router.match(r)
	if rte == nil && allowed == nil {
		return false, nil
	}
	c := &caller{}
	err := h.serveRoute(w, r, rte, c, params, allowed, adminToken)
	if rte != nil {
		h.router.denied(r, rte, c, err)
	}
	return true, h.Answer(w, r, err)
}
