package routes

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
)

// Signing in with a passkey: begin hands out a challenge, finish checks
// the answer and starts the session (see passkeys.go for the passkeys
// themselves).

// serveLoginPasskeyBegin answers with the options to sign in with a
// passkey: no username and no list of credentials (the browser offers the
// site's discoverable passkeys), and user verification required, since a
// passkey alone stands for both a password and a second factor. Anyone may
// begin one, so it writes nothing and is throttled per address in memory.
func (h *signInRoutes) serveLoginPasskeyBegin(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := h.cookieCanBeSet(r); err != nil {
		return err
	}
	if err := h.throttleBegin(r); err != nil {
		return err
	}
	wa, err := h.relyingParty(r)
	if err != nil {
		return err
	}
	assertion, data, err := wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return err
	}
	if err := h.beginCeremony(w, r, CeremonyLogin, "", data); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, assertion)
	return nil
}

// passkeyLogin is the body of POST {api}/passkeys/login/finish.
type passkeyLogin struct {
	Credential json.RawMessage `json:"credential"`
	Remember   bool            `json:"remember"`
	Redirect   string          `json:"redirect"`
}

// serveLoginPasskeyFinish verifies a passkey sign-in and signs its user in.
// Each is reserved against the per-address limit of failed logins first,
// as a password check is.
func (h *signInRoutes) serveLoginPasskeyFinish(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var body passkeyLogin
	if err := request.DecodeJSONObject(r.Body, &body, "credential", "remember", "redirect"); err != nil {
		return badBody(err)
	}
	if err := h.cookieCanBeSet(r); err != nil {
		return err
	}
	ip := clientIP(r)
	attempt, err := h.store.ReservePasskeyAttempt(r.Context(), ip, h.Throttle)
	if err != nil {
		return storeUnavailable(err)
	}
	if attempt.Throttled() {
		h.logger.Warn("passkey sign-in throttled", zap.String("client_ip", ip), zap.Int("ip_failures", attempt.IP))
		h.signInAttempt(r, "", nil, loginThrottled, "")
		return tooManyAttempts(attempt, msgTooManyFailures)
	}
	user, err := h.verifyPasskeyLogin(w, r, body.Credential)
	var ref *Refusal
	if errors.As(err, &ref) && ref.status == http.StatusServiceUnavailable {
		h.releaseAttempt(attempt)
	}
	if err != nil {
		return err
	}
	h.releaseAttempt(attempt)
	return h.completePasskeySignIn(w, r, user, body)
}

// verifyPasskeyLogin checks a sign-in's answer against its ceremony and the
// passkey it names, moves the passkey's counter forward, and returns the
// passkey's user. A failure is recorded in the user's sign-in history when
// the passkey named one.
func (h *signInRoutes) verifyPasskeyLogin(w http.ResponseWriter, r *http.Request, credential json.RawMessage) (*store.User, error) {
	wa, err := h.relyingParty(r)
	if err != nil {
		return nil, err
	}
	_, data, err := h.takeCeremony(w, r, CeremonyLogin)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil {
		h.signInAttempt(r, "", nil, loginFailure, "")
		return nil, refuse(ReasonUnverifiedPasskey, "The passkey answer cannot be read")
	}
	var found *passkeyUser
	var storeErr error
	_, cred, err := wa.ValidatePasskeyLogin(func(_, handle []byte) (webauthn.User, error) {
		user, err := h.store.UserByWebAuthnHandle(r.Context(), handle)
		if err != nil {
			if !errors.Is(err, store.ErrUserNotFound) {
				storeErr = err
			}
			return nil, err
		}
		found, err = h.loadPasskeyUser(r, *user)
		storeErr = err
		return found, err
	}, *data, parsed)
	if storeErr != nil {
		return nil, storeUnavailable(storeErr)
	}
	username := ""
	if found != nil {
		username = found.user.Username
	}
	ip := clientIP(r)
	if err != nil {
		h.logger.Info("passkey sign-in failed", zap.String("username", username), zap.String("client_ip", ip), zap.Error(err))
		h.signInAttempt(r, username, nil, loginFailure, store.FactorPasskey)
		return nil, refuse(ReasonInvalidPasskey, msgPasskeyFailed)
	}
	if err := h.usePasskey(r, username, cred); err != nil {
		return nil, err
	}
	return &found.user, nil
}

// usePasskey moves a verified passkey's signature counter forward, or
// refuses the sign-in (or step-up) when the counter did not move.
func (h *signInRoutes) usePasskey(r *http.Request, username string, cred *webauthn.Credential) error {
	err := h.store.UsePasskey(r.Context(), cred.ID, cred.Authenticator.SignCount, cred.Flags.BackupState)
	if cred.Authenticator.CloneWarning || errors.Is(err, store.ErrPasskeyCounter) {
		// The counter went backwards or stood still: two copies of the key
		// may exist. The sign-in is refused, and the owner sees it.
		h.logger.Warn("passkey sign-in refused: its signature counter did not move forward, the key may be cloned",
			zap.String("username", username), zap.String("client_ip", clientIP(r)))
		h.signInAttempt(r, username, nil, loginFailure, store.FactorPasskey)
		return refuse(ReasonInvalidPasskey, msgPasskeyFailed)
	}
	if err != nil {
		return storeUnavailable(err)
	}
	return nil
}

// passkeySignedIn is the answer to a passkey sign-in: the user, and where
// the page should go next.
type passkeySignedIn struct {
	userJSON
	Redirect string `json:"redirect"`
}

// completePasskeySignIn signs in user, whose passkey was verified. A
// passkey with user verification is both factors at once, so the session
// starts here; a second-factor mode would instead finish a pending login.
//
// After a right password (a pending login, see secondfactor.go) the passkey
// is the second step: it must be the same user's, remember-me comes from
// the password step, and the pending login ends in the transaction that
// starts the session, so a code sent at the same time finds it finished.
// A passkey is a whole sign-in on its own: when a code finished the
// pending login first, the passkey still signs in, with no pending login.
func (h *signInRoutes) completePasskeySignIn(w http.ResponseWriter, r *http.Request, user *store.User, body passkeyLogin) error {
	remember := body.Remember
	pendingToken, hasPending := h.pendingToken(r)
	if hasPending {
		pending, err := h.store.GetPendingLogin(r.Context(), pendingToken)
		if err != nil {
			return storeUnavailable(err)
		}
		switch {
		case pending == nil:
			// Expired or finished: the passkey alone signs in all the same.
			hasPending = false
		case pending.User.ID != user.ID:
			h.signInAttempt(r, pending.User.Username, nil, loginFailure, store.FactorPasskey)
			return refuse(ReasonInvalidPasskey, "That passkey is another account's: use the one of the account you are signing in to")
		default:
			remember = pending.Remember
		}
	}
	// A passkey with user verification is both factors: the session says
	// so, with or without a password step before it.
	create := func(ctx context.Context, p store.SessionParams) (string, *store.Session, error) {
		p.Method = store.MethodPasskey
		return h.store.CreateSession(ctx, p)
	}
	passkeyAlone := create
	if hasPending {
		// The pending login ends in the transaction that starts the
		// session, so a code sent at the same time cannot start another.
		create = func(ctx context.Context, p store.SessionParams) (string, *store.Session, error) {
			return h.store.FinishPendingLogin(ctx, pendingToken, store.SecondStep{Factor: store.FactorPasskey}, p)
		}
	}
	err := h.startSessionWith(w, r, user, remember, create)
	if errors.Is(err, store.ErrNoPendingLogin) {
		// Finished by a code sent at the same time, or expired meanwhile:
		// the passkey alone signs in, as it would have without it.
		err = h.startSessionWith(w, r, user, body.Remember, passkeyAlone)
	}
	switch {
	case errors.Is(err, store.ErrCredentialsChanged), errors.Is(err, store.ErrUserNotFound):
		h.signInAttempt(r, user.Username, nil, loginFailure, store.FactorPasskey)
		return refuse(ReasonInvalidPasskey, msgPasskeyFailed)
	case err != nil:
		return storeUnavailable(err)
	}
	if _, had := h.pendingToken(r); had {
		http.SetCookie(w, h.pendingCookie(r, "", -1))
	}
	h.signInAttempt(r, user.Username, user, loginSuccess, store.FactorPasskey)
	writeJSON(w, http.StatusOK, passkeySignedIn{userJSON: toUserJSON(*user), Redirect: h.safeReturn(r, body.Redirect)})
	return nil
}
