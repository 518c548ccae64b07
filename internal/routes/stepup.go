package routes

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// Stepping up: a session signed in with the password alone passes a
// second factor later, when a path asks for one, and keeps its token. The
// factor is checked and used up as at sign-in (the same throttle, a TOTP
// step once, a recovery code once), and the session's new method is
// announced to every server (store.StepUpSession).

// stepUpPath is the step-up page, under login_path.
func (h *responder) stepUpPath() string { return h.LoginPath + "/step-up" }

// StepUp answers a request of sess to a path that needs a second factor
// its session has not passed, for the gate: a browser whose user has one
// goes to the step-up page and comes back; a user without one is sent to
// set one up, as second_factor required does; a script gets 401
// second_factor_required.
func (s *Site) StepUp(w http.ResponseWriter, r *http.Request, sess engine.Session) error {
	if user := sess.User(); !user.SecondFactor {
		return s.sendToEnrol(w, r)
	}
	if wantsHTML(r) {
		w.Header().Set("Cache-Control", "no-store")
		target := request.SafeRedirect(r.URL.RequestURI())
		http.Redirect(w, r, s.stepUpPath()+"?redirect="+url.QueryEscape(target), http.StatusSeeOther)
		return nil
	}
	return s.Answer(w, r, refuse(ReasonSecondFactorRequired,
		"This path needs a second factor: sign in again with it or step up at POST "+s.APIPath+"/step-up"))
}

// secondFactorDone reports whether a session row was signed in, or
// stepped up, with more than a password.
func secondFactorDone(sess *store.Session) bool {
	return store.MethodHasSecondFactor(sess.Method)
}

// meJSON is the answer of /me: the user, and how the session was signed in.
type meJSON struct {
	userJSON
	AuthMethod string `json:"auth_method"`
}

// serveMe returns the user of the current session.
func (h *signInRoutes) serveMe(w http.ResponseWriter, r *http.Request, c *caller) error {
	writeJSON(w, http.StatusOK, meJSON{userJSON: toUserJSON(c.session.User), AuthMethod: c.session.Method})
	return nil
}

// serveStepUpPage shows the step-up page: GET {login_path}/step-up. A
// session that passed a second factor already goes straight on.
func (h *signInRoutes) serveStepUpPage(w http.ResponseWriter, r *http.Request, c *caller) error {
	redirect := r.URL.Query().Get("redirect")
	if secondFactorDone(c.session) {
		http.Redirect(w, r, h.safeReturn(r, redirect), http.StatusSeeOther)
		return nil
	}
	if !c.session.SecondFactor {
		return h.sendToEnrol(w, r)
	}
	return h.renderStepUpPage(w, r, http.StatusOK, c.session, redirect, "", false)
}

// renderStepUpPage is the second step's page, for the session's user.
func (h *signInRoutes) renderStepUpPage(w http.ResponseWriter, r *http.Request, status int, sess *store.Session,
	redirect, message string, recovery bool) error {
	factors, err := h.store.UserFactors(r.Context(), sess.User.ID)
	if err != nil {
		return storeUnavailable(err)
	}
	page := web.SecondFactorPage{
		Title:         "Confirm with your second factor",
		SiteName:      h.SiteName,
		Action:        h.stepUpPath(),
		Redirect:      h.safeReturn(r, redirect),
		Error:         message,
		Recovery:      recovery,
		Notice:        "Signed in as " + sess.User.Username + ": this page needs your second factor.",
		LoginHref:     h.Home,
		BackText:      "Not now",
		TOTP:          factors.TOTP,
		RecoveryCodes: factors.RecoveryCodes > 0,
	}
	if factors.Passkeys > 0 {
		page.PasskeyAPI, page.PasskeyFlow = h.APIPath, "step-up"
	}
	return renderPage(w, r, status, web.SecondFactorTemplate(), h.BuiltinPageCSP, page)
}

// stepUpJSON is the answer of a step-up: the session's method, and for a
// passkey's, where the page goes next.
type stepUpJSON struct {
	Method   string `json:"method"`
	Redirect string `json:"redirect,omitempty"`
}

// serveStepUp steps the session up with a code or a recovery code: the
// step-up page's form at POST {login_path}/step-up, and POST {api}/step-up.
// Each check is reserved as the second step's is, and a wrong code counts.
func (h *signInRoutes) serveStepUp(w http.ResponseWriter, r *http.Request, c *caller) error {
	b, err := readSecondFactor(r)
	if err != nil {
		return err
	}
	sess := c.session
	if secondFactorDone(sess) {
		// Nothing to do, and a factor used now would only change the
		// method a passkey session reports.
		return h.steppedUp(w, r, b.form, sess.Method, b.Redirect)
	}
	if !sess.SecondFactor {
		return enrolmentRequired()
	}
	user := sess.User
	attempt, step, right, err := h.reserveAndCheckCode(r, &user, b)
	if err != nil {
		return err
	}
	method := ""
	if right {
		method, err = h.store.StepUpSession(r.Context(), sess.ID, user.ID, step)
		switch {
		case errors.Is(err, store.ErrFactorRefused):
			right = false
		case errors.Is(err, store.ErrSessionNotFound):
			// Ended meanwhile: not a wrong code.
			h.releaseAttempt(attempt)
			return sessionExpired()
		case err != nil:
			h.releaseAttempt(attempt)
			return storeUnavailable(err)
		}
	}
	if !right {
		h.logger.Info("step-up failed", zap.String("username", user.Username), zap.String("client_ip", clientIP(r)),
			zap.String("factor", step.Factor))
		h.signInAttempt(r, user.Username, &user, loginFailure, step.Factor)
		if b.form {
			return h.renderStepUpPage(w, r, http.StatusUnauthorized, sess, b.Redirect, msgInvalidCode, step.Factor == store.FactorRecoveryCode)
		}
		return refuse(ReasonInvalidCode, msgInvalidCode)
	}
	if err := h.store.ClearLoginFailures(r.Context(), user.Username); err != nil {
		h.logger.Warn("clearing failed logins after a step-up", zap.Error(err))
	}
	h.signInAttempt(r, user.Username, &user, loginSuccess, step.Factor)
	h.forgetStepped(sess)
	return h.steppedUp(w, r, b.form, method, b.Redirect)
}

// forgetStepped drops a stepped-up session from this server's memory, so
// its next request here reads the new method without waiting for the
// notification that tells the other servers.
func (h *signInRoutes) forgetStepped(sess *store.Session) {
	if key, ok := engine.KeyOfID(sess.ID); ok {
		h.memory.Forget(key)
	}
	h.logger.Info("session stepped up", zap.String("username", sess.User.Username))
}

// steppedUp answers a step-up that holds: the form goes where it was
// headed, a script learns the method.
func (h *signInRoutes) steppedUp(w http.ResponseWriter, r *http.Request, form bool, method, redirect string) error {
	if form {
		http.Redirect(w, r, h.safeReturn(r, redirect), http.StatusSeeOther)
		return nil
	}
	writeJSON(w, http.StatusOK, stepUpJSON{Method: method})
	return nil
}

// serveStepUpPasskeyBegin answers with the options to check one of the
// signed-in user's passkeys: POST {api}/passkeys/step-up/begin. The
// ceremony's cookie names the user, so its finish is the same user's.
func (h *signInRoutes) serveStepUpPasskeyBegin(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.throttleBegin(r); err != nil {
		return err
	}
	wa, err := h.relyingParty(r)
	if err != nil {
		return err
	}
	pu, err := h.loadPasskeyUser(r, c.session.User)
	if err != nil {
		return storeUnavailable(err)
	}
	if len(pu.credentials) == 0 {
		return refuse(ReasonNoSuchPasskey, "You have no passkey to step up with")
	}
	assertion, data, err := wa.BeginLogin(pu, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return err
	}
	if err := h.beginCeremony(w, r, CeremonyStepUp, c.session.User.ID, data); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, assertion)
	return nil
}

// passkeyStepUp is the body of POST {api}/passkeys/step-up/finish.
type passkeyStepUp struct {
	Credential json.RawMessage `json:"credential"`
	Redirect   string          `json:"redirect"`
}

// serveStepUpPasskeyFinish verifies the answer to a step-up's passkey
// check, which must be a passkey of the session's user, and steps the
// session up. Each is reserved against the per-address limit of failed
// logins first, as a passkey sign-in is.
func (h *signInRoutes) serveStepUpPasskeyFinish(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body passkeyStepUp
	if err := request.DecodeJSONObject(r.Body, &body, "credential", "redirect"); err != nil {
		return badBody(err)
	}
	sess := c.session
	if secondFactorDone(sess) {
		return h.steppedUpByPasskey(w, r, sess.Method, body.Redirect)
	}
	attempt, err := h.store.ReservePasskeyAttempt(r.Context(), clientIP(r), h.Throttle)
	if err != nil {
		return storeUnavailable(err)
	}
	if attempt.Throttled() {
		h.signInAttempt(r, sess.User.Username, &sess.User, loginThrottled, "")
		return tooManyAttempts(attempt, msgTooManyFailures)
	}
	err = h.verifyStepUpPasskey(w, r, sess, body.Credential)
	var ref *Refusal
	if err == nil || errors.As(err, &ref) && ref.status == http.StatusServiceUnavailable {
		h.releaseAttempt(attempt)
	}
	if err != nil {
		return err
	}
	method, err := h.store.StepUpSession(r.Context(), sess.ID, sess.User.ID, store.SecondStep{Factor: store.FactorPasskey})
	switch {
	case errors.Is(err, store.ErrSessionNotFound):
		return sessionExpired()
	case err != nil:
		return storeUnavailable(err)
	}
	h.signInAttempt(r, sess.User.Username, &sess.User, loginSuccess, store.FactorPasskey)
	h.forgetStepped(sess)
	return h.steppedUpByPasskey(w, r, method, body.Redirect)
}

func (h *signInRoutes) steppedUpByPasskey(w http.ResponseWriter, r *http.Request, method, redirect string) error {
	writeJSON(w, http.StatusOK, stepUpJSON{Method: method, Redirect: h.safeReturn(r, redirect)})
	return nil
}

// verifyStepUpPasskey checks a step-up's answer against its ceremony, which
// the session's user began, and against that user's passkeys alone, and
// moves the passkey's counter forward.
func (h *signInRoutes) verifyStepUpPasskey(w http.ResponseWriter, r *http.Request, sess *store.Session, credential json.RawMessage) error {
	wa, err := h.relyingParty(r)
	if err != nil {
		return err
	}
	began, data, err := h.takeCeremony(w, r, CeremonyStepUp)
	if err != nil {
		return err
	}
	user := sess.User
	failed := func() error {
		h.signInAttempt(r, user.Username, &user, loginFailure, store.FactorPasskey)
		return refuse(ReasonInvalidPasskey, msgPasskeyFailed)
	}
	if began != user.ID {
		// Begun by another session's user: this session's passkeys were
		// never asked for.
		return failed()
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil {
		return refuse(ReasonUnverifiedPasskey, "The passkey answer cannot be read")
	}
	pu, err := h.loadPasskeyUser(r, user)
	if err != nil {
		return storeUnavailable(err)
	}
	cred, err := wa.ValidateLogin(pu, *data, parsed)
	if err != nil {
		h.logger.Info("passkey step-up failed", zap.String("username", user.Username), zap.String("client_ip", clientIP(r)), zap.Error(err))
		return failed()
	}
	return h.usePasskey(r, user.Username, cred)
}
