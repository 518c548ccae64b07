package routes

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// Signing in and out: login (JSON and form), registration, logout, "me",
// and the login page.

// Messages the routes answer with; the wrong-password one is the same for an
// unknown user, so it does not tell which names exist.
const (
	msgInvalidCredentials = "Invalid username or password"
	msgUsernameTaken      = "That username is not available"
	msgTooManyFailures    = "Too many failed logins, try again later"
)

// serveLogin checks a username and password and starts a new session.
// Each check is reserved against the failed-login limits before the
// password is hashed (see store.ReserveLoginAttempt), so the limits hold
// under parallel guessing and across every server; past them, even the
// right password gets 429 until the window has passed.
func (h *signInRoutes) serveLogin(w http.ResponseWriter, r *http.Request, _ *caller) error {
	c, err := readCredentials(r)
	if err != nil {
		return err
	}
	if err := h.cookieCanBeSet(r); err != nil {
		return err
	}
	ip := clientIP(r)
	attempt, err := h.reserveLogin(r, c.Username, ip)
	if err != nil {
		if attempt.Throttled() {
			h.signInAttempt(r, c.Username, nil, loginThrottled, "")
		}
		return err
	}
	user, err := h.store.VerifyPassword(r.Context(), c.Username, c.Password)
	if errors.Is(err, store.ErrUnknownUser) {
		// The name is not logged: it is often a password typed into the name field.
		h.logger.Info("login failed: no account has the name given", zap.String("client_ip", ip))
		h.signInAttempt(r, c.Username, nil, loginFailure, store.FactorPassword)
		return h.refuseLogin(w, r, c)
	}
	if errors.Is(err, store.ErrInvalidCredentials) {
		h.logger.Info("login failed", zap.String("username", c.Username), zap.String("client_ip", ip))
		h.signInAttempt(r, c.Username, nil, loginFailure, store.FactorPassword)
		return h.refuseLogin(w, r, c)
	}
	if err != nil {
		h.releaseAttempt(attempt)
		return passwordCheckFailed(err)
	}
	// A user with a second factor gets no session yet, and the reserved
	// attempt still counts: it is forgiven once the code is right.
	switch factors, err := h.store.UserFactors(r.Context(), user.ID); {
	case err != nil:
		return storeUnavailable(err)
	case h.unverified(user):
		return h.refuseUnverified(w, r, c, user)
	case factors.Any():
		return h.askSecondFactor(w, r, c, user, factors)
	}
	if err := h.store.ClearLoginFailures(r.Context(), c.Username); err != nil {
		return storeUnavailable(err)
	}
	switch err := h.startSession(w, r, user, c.Remember); {
	case errors.Is(err, store.ErrCredentialsChanged), errors.Is(err, store.ErrUserNotFound):
		// The password was changed, or the user deleted, while this login
		// was being checked: what was verified is no longer valid.
		h.logger.Info("login failed: credentials changed during the login", zap.String("username", user.Username),
			zap.String("client_ip", ip))
		h.signInAttempt(r, c.Username, nil, loginFailure, store.FactorPassword)
		return h.refuseLogin(w, r, c)
	case err != nil:
		return storeUnavailable(err)
	}
	h.signInAttempt(r, c.Username, user, loginSuccess, store.FactorPassword)
	return h.signedIn(w, r, c, http.StatusOK, user)
}

// LoginOutcomes are how a sign-in attempt can end, the label values of
// logins_total.
var LoginOutcomes = []string{loginSuccess, loginFailure, loginThrottled, loginSecondFactorRequired}

// How a sign-in attempt ended, as the metrics and the sign-in history name it.
const (
	loginSuccess   = "success"
	loginFailure   = "failure"
	loginThrottled = "throttled"
	// loginSecondFactorRequired is a right password that asks for a code.
	loginSecondFactorRequired = store.SignInSecondFactorRequired
)

// signInAttempt notes how an attempt to sign in as username ended; user is
// the account when it is known, nil otherwise; factor is what the attempt
// checked (store.FactorPassword, …), "" for none. It is the one place the
// metrics and the sign-in history learn of logins.
func (h *attempts) signInAttempt(r *http.Request, username string, user *store.User, outcome, factor string) {
	h.recordSignIn(r, username, user, outcome, factor)
	h.metrics.Logins.WithLabelValues(outcome).Inc()
	if factor != "" {
		h.metrics.Factors.WithLabelValues(factor, outcome).Inc()
	}
}

// signedIn answers a login or registration that started a session: the form
// goes where it was headed, a script gets the user.
func (h *signInRoutes) signedIn(w http.ResponseWriter, r *http.Request, c credentials, status int, user *store.User) error {
	if c.form {
		http.Redirect(w, r, h.safeReturn(r, c.Redirect), http.StatusSeeOther)
		return nil
	}
	writeJSON(w, status, toUserJSON(*user))
	return nil
}

// refuseLogin answers a login whose name and password do not match: the
// form again, with the message, or a refusal for a script.
func (h *signInRoutes) refuseLogin(w http.ResponseWriter, r *http.Request, c credentials) error {
	if c.form {
		return h.renderLoginPage(w, r, http.StatusUnauthorized, c, msgInvalidCredentials)
	}
	return refuse(ReasonInvalidCredentials, msgInvalidCredentials)
}

// reserveLogin reserves a password check for username from ip, or refuses
// with 429 past the failed-login limits.
func (h *attempts) reserveLogin(r *http.Request, username, ip string) (store.Attempt, error) {
	a, err := h.store.ReserveLoginAttempt(r.Context(), username, ip, h.Throttle)
	if err != nil {
		return a, storeUnavailable(err)
	}
	if a.Throttled() {
		h.logger.Warn("login throttled", zap.String("username", username), zap.String("client_ip", ip),
			zap.Int("account_failures", a.Account), zap.Int("ip_failures", a.IP))
		return a, tooManyAttempts(a, msgTooManyFailures)
	}
	return a, nil
}

// releaseAttempt forgets a reservation whose password was never checked, so
// a busy server or a failing database does not count against the user. It
// is best effort and outlives the request, whose client may be gone.
func (h *attempts) releaseAttempt(a store.Attempt) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.store.ReleaseAttempt(ctx, a); err != nil {
		h.logger.Warn("releasing a reserved password check", zap.Error(err))
	}
}

// serveRegister creates an account and logs it in, when registration is
// on. Registrations are counted per client address, each costing a
// password hash: a client past max_registrations_per_ip (or its address past
// max_failed_logins_per_ip) gets 429 before anything is hashed.
func (h *signInRoutes) serveRegister(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if !h.Registration {
		return refuse(ReasonRegistrationOff, "Registration is not enabled")
	}
	c, err := h.readRegistration(r)
	if err != nil {
		return err
	}
	if err := h.cookieCanBeSet(r); err != nil {
		return err
	}
	user, err := h.register(r, c)
	var ref *Refusal
	if errors.As(err, &ref) && (ref.status == http.StatusBadRequest || ref.status == http.StatusConflict) && c.form {
		// The person at the form sees why, on the form.
		return h.renderLoginPage(w, r, ref.status, c, ref.message)
	}
	if err != nil {
		return err
	}
	h.logger.Info("user registered", zap.String("username", user.Username), zap.String("client_ip", clientIP(r)))
	return h.registered(w, r, c, user)
}

// register creates the account c asks for, or says why not.
func (h *signInRoutes) register(r *http.Request, c credentials) (*store.User, error) {
	var inputErr *store.InputError
	if err := errors.Join(store.ValidateUsername(c.Username), store.ValidatePassword(c.Password)); errors.As(err, &inputErr) {
		return nil, badInput(inputErr)
	}
	ip := clientIP(r)
	attempt, err := h.store.ReserveRegistration(r.Context(), ip, h.Throttle)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if attempt.Throttled() {
		h.logger.Warn("registration throttled", zap.String("client_ip", ip),
			zap.Int("registrations", attempt.Account), zap.Int("ip_attempts", attempt.IP))
		return nil, tooManyAttempts(attempt, "Too many sign-ups from your address, try again later")
	}
	user, err := h.createAccount(r.Context(), c)
	switch {
	case errors.As(err, &inputErr):
		return nil, badInput(inputErr)
	case errors.Is(err, store.ErrUserExists):
		return nil, refuse(ReasonUsernameTaken, msgUsernameTaken)
	case errors.Is(err, store.ErrEmailTaken):
		return nil, emailError(err)
	case err != nil:
		h.releaseAttempt(attempt)
		return nil, passwordCheckFailed(err)
	}
	return user, nil
}

// startSession creates a session with a fresh token and sets its cookie. A
// session the request already carried is ended first, so a token planted in
// a browser before login never becomes a logged-in one. The session is
// created only while user's credentials are still the ones verified; else
// the error is store.ErrCredentialsChanged (or store.ErrUserNotFound).
func (h *signInRoutes) startSession(w http.ResponseWriter, r *http.Request, user *store.User, remember bool) error {
	return h.startSessionWith(w, r, user, remember, h.store.CreateSession)
}

// startSessionWith is startSession with the store call that creates the
// session: the second step's ends its pending login in the same
// transaction (store.FinishPendingLogin).
func (h *signInRoutes) startSessionWith(w http.ResponseWriter, r *http.Request, user *store.User, remember bool,
	create func(context.Context, store.SessionParams) (string, *store.Session, error)) error {
	if old, ok := h.token(r); ok {
		if err := h.store.DeleteSession(r.Context(), old); err != nil {
			return err
		}
	}
	remember = remember && h.RememberFor > 0
	lifetime := time.Duration(h.Lifetime)
	if remember {
		lifetime = h.RememberFor
	}
	token, _, err := create(r.Context(), store.SessionParams{
		User:        *user,
		Lifetime:    lifetime,
		IdleTimeout: time.Duration(h.IdleTimeout),
		MaxPerUser:  h.MaxSessionsPerUser,
		UserAgent:   r.UserAgent(),
		IP:          clientIP(r),
	})
	if err != nil {
		return err
	}
	h.metrics.SessionsCreated.Inc()
	// Without remember me the cookie lasts as long as the browser session;
	// with it, as long as the session itself.
	cookie := h.sessionCookie(r, token)
	if remember {
		cookie.MaxAge = int(lifetime / time.Second)
	}
	http.SetCookie(w, cookie)
	h.logger.Info("login", zap.String("username", user.Username), zap.String("client_ip", clientIP(r)))
	return nil
}

// serveLogout ends the session server-side and clears the cookie; it
// succeeds with or without a session, so a double click does no harm.
// While the database cannot be reached the browser's cookie and this
// server's memory of the session are cleared all the same, and the answer
// (503) says that the session could not be ended everywhere.
func (h *signInRoutes) serveLogout(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var storeErr error
	if token, ok := h.token(r); ok {
		// Every cookie of the name the browser sent is ended: with
		// cookie_domain, a stale copy of this host may come before the
		// live one, which the browser is about to forget.
		tokens := []string{token}
		if h.CookieDomain != "" {
			tokens = append(tokens, h.otherTokens(r, token)...)
		}
		for _, token := range tokens {
			h.memory.Forget(engine.KeyOf(token))
			if err := h.store.DeleteSession(r.Context(), token); err != nil {
				if engine.ClientGone(r.Context(), err) {
					return nil
				}
				storeErr = err
			}
		}
	}
	if storeErr == nil && r.URL.Path == h.LogoutPath {
		return h.signedOut(w, r)
	}
	h.clearSession(w, r)
	if storeErr != nil {
		ref := storeUnavailable(storeErr)
		ref.message = "Signed out in this browser and on this server, but the session store is unavailable, " +
			"so the session could not be ended everywhere"
		return ref
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// clearSession clears the session cookie, and with Clear-Site-Data what
// scripts may have copied of the session.
func (h *cookies) clearSession(w http.ResponseWriter, r *http.Request) {
	h.dropCookie(w, r)
	if !trustworthy(r) {
		// Browsers obey Clear-Site-Data only from a secure origin, and
		// Chromium, given it on a plain-HTTP page of another name than
		// localhost, also kept the cookie the response cleared.
		return
	}
	if h.ClearSiteDataCache {
		w.Header().Set("Clear-Site-Data", `"cookies", "cache"`)
	} else {
		w.Header().Set("Clear-Site-Data", `"cookies"`)
	}
}

// signedOutURL is the login page saying "You have been signed out". The
// page learns it from a fixed key in its query, never from text the request
// carries, so the query is no way to put words on the page.
func (h *responder) signedOutURL() string { return h.LoginPath + "?done=" + doneSignedOut }

const doneSignedOut = "signed-out"

// signedOut answers a form that has just ended its own session, whose row
// is already deleted. A browser gets a "Signing out" page that moves on at
// once (a Refresh header) to the login page, and the login page clears the
// cookie. Chromium keeps a no-store page in its back-forward cache unless a
// cookie changes while the page is in it, which is only once the browser
// has shown the next page: a cookie cleared by this response would leave
// the protected page one Back away. Anything else is redirected to the
// login page with the cookie cleared at once.
func (h *responder) signedOut(w http.ResponseWriter, r *http.Request) error {
	if !prefersHTML(r) {
		h.clearSession(w, r)
		http.Redirect(w, r, h.signedOutURL(), http.StatusSeeOther)
		return nil
	}
	w.Header().Set("Refresh", "0; url="+h.signedOutURL())
	return h.renderMessage(w, r, http.StatusOK, web.MessagePage{
		Heading: "Signing out…",
		Links:   []web.Link{{Href: h.signedOutURL(), Text: "Continue"}},
	})
}

// loginNotices are what the login page can be asked to say, by the key in
// its "done" query parameter.
var loginNotices = map[string]string{
	doneSignedOut: "You have been signed out",
}

// serveLogoutPage answers a browser that opens the sign-out address with a
// page asking whether to sign out: a GET must not end a session (any link
// or image could send one), so the page's button sends the POST. A script
// gets the 405 it always did.
func (h *signInRoutes) serveLogoutPage(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if !prefersHTML(r) {
		return methodNotAllowed(w, []string{http.MethodPost})
	}
	sess, err := h.sessionRow(r)
	if err == nil && sess == nil {
		return h.renderMessage(w, r, http.StatusOK, web.MessagePage{
			Heading: "You are not signed in",
			Links:   []web.Link{{Href: h.LoginPath, Text: "Sign in"}, h.homeLink()},
		})
	}
	// Without the database the question is still asked: signing out
	// then ends the session in this browser and on this server.
	page := web.MessagePage{
		Heading: "Sign out?",
		Action:  h.LogoutPath,
		Button:  "Sign out",
		Links:   []web.Link{{Href: h.Home, Text: "Stay signed in"}},
	}
	if sess != nil {
		page.Message = "You are signed in as " + sess.User.Username + "."
	}
	return h.renderMessage(w, r, http.StatusOK, page)
}

// serveLoginPage shows the login form, or sends a visitor who is already
// logged in on to where they were going.
func (h *signInRoutes) serveLoginPage(w http.ResponseWriter, r *http.Request, _ *caller) error {
	redirect := r.URL.Query().Get("redirect")
	if problem := h.portalProblem(r); problem != "" {
		return h.misconfigured(w, r, problem)
	}
	if !h.servesPortal(r) {
		return h.toPortal(w, r, redirect)
	}
	sess, err := h.sessionRow(r)
	if err == nil && sess != nil {
		return h.sendBack(w, r, h.safeReturn(r, redirect))
	}
	if _, hadCookie := h.token(r); err == nil && hadCookie {
		// The end of a sign-out (see signedOut), or a session that ended.
		if r.URL.Query().Get("done") == doneSignedOut {
			h.clearSession(w, r)
		} else {
			h.dropCookie(w, r)
		}
	}
	// A database failure still shows the form: the login itself will say
	// that the store is unavailable.
	return h.renderLoginPage(w, r, http.StatusOK, credentials{Redirect: redirect}, "")
}

func (h *signInRoutes) renderLoginPage(w http.ResponseWriter, r *http.Request, status int, c credentials, message string) error {
	page := web.LoginPage{
		Title:      "Sign in",
		SiteName:   h.SiteName,
		Action:     h.LoginPath,
		Redirect:   h.safeReturn(r, c.Redirect),
		Username:   c.Username,
		Error:      message,
		Remember:   h.RememberFor > 0,
		Remembered: c.Remember,
		PasskeyAPI: h.APIPath,
	}
	if h.SiteName != "" {
		page.Title = "Sign in to " + h.SiteName
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		page.Notice = loginNotices[r.URL.Query().Get("done")]
	}
	if h.Registration {
		page.RegisterAction, page.RegisterEmail = h.APIPath+"/register", h.VerifyEmail
	}
	page.Providers = h.providerButtons(page.Redirect)
	page.ForgotHref = h.forgotHref()
	return renderPage(w, r, status, h.LoginPage, h.LoginPageCSP, page)
}

// clientIP is the client's address as Caddy determined it, with its
// trusted_proxies setting applied.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		return ip
	}
	return r.RemoteAddr
}
