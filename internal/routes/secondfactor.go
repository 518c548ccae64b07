package routes

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/internal/sealed"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// Secrets kept for second factors are encrypted at rest: a copy of the
// database (a backup, a replica, a leaked dump) must not hand out every
// user's authenticator. The key comes from the secrets_key option and lives
// only in the server's configuration.

// MinSecretsKeyLength is the shortest secrets_key accepted: 32 characters
// of the printed key carry 192 bits, more than AES-256's brute-force margin
// needs against a guessed passphrase.
const MinSecretsKeyLength = 32

// SecretBox seals and opens the secrets stored for users, and holds the
// key derived from secrets_key for passkey ceremony cookies.
type SecretBox struct {
	box         *sealed.Box
	ceremonyKey []byte
}

// NewSecretBox derives the keys of secretsKey's two uses, so the option
// may be any long string.
func NewSecretBox(secretsKey string) (*SecretBox, error) {
	key, err := sealed.DeriveKey(secretsKey, "caddy-pgsession second factor secrets v1")
	if err != nil {
		return nil, err
	}
	box, err := sealed.New(key)
	if err != nil {
		return nil, err
	}
	ceremonyKey, err := sealed.DeriveKey(secretsKey, "caddy-pgsession passkey ceremonies v1")
	if err != nil {
		return nil, err
	}
	return &SecretBox{box: box, ceremonyKey: ceremonyKey}, nil
}

// seal encrypts a secret of user's; the user id is authenticated with it,
// so a row copied to another user does not open.
func (b *SecretBox) seal(userID, secret string) []byte {
	return b.box.Seal([]byte(secret), []byte(userID))
}

// open decrypts what seal made for the same user.
func (b *SecretBox) open(userID string, sealedSecret []byte) (string, error) {
	plain, err := b.box.Open(sealedSecret, []byte(userID))
	if err != nil {
		return "", errors.New("stored secret does not open with secrets_key (was the key changed, or the row moved?)")
	}
	return string(plain), nil
}

// The second step of a sign-in. A right password for a user with a second
// factor starts no session: it records a pending login, bound to the user
// and to their credentials as verified, and sets a short-lived cookie of
// its own naming it. The code (or a recovery code) sent with that cookie
// then starts the session. The pending cookie is not a session: the gate
// never reads it.

const (
	// MaxCodeFailures is how many wrong codes one pending login may see
	// before it ends and the password must be typed again.
	MaxCodeFailures = 3
	// maxCodeFailuresPerAccount caps the failed logins, wrong codes
	// included, after which an account's codes are refused with 429 within
	// failed_login_window, when max_failed_logins_per_account is higher:
	// with the password known, a few guesses per window at a six-digit
	// code are all there is.
	maxCodeFailuresPerAccount = 5

	msgInvalidCode    = "Invalid code"
	msgPendingExpired = "Your sign-in expired: sign in with your password again"
)

// pendingCookieName is the pending login's cookie: the session cookie's
// name with _pending, which keeps a __Host- prefix valid.
func (h *signInRoutes) pendingCookieName() string { return h.CookieName + "_pending" }

// pendingCookie sets (maxAge > 0) or clears (maxAge < 0) the pending cookie.
func (h *signInRoutes) pendingCookie(r *http.Request, token string, maxAge int) *http.Cookie {
	c := h.sessionCookie(r, token)
	c.Name, c.MaxAge = h.pendingCookieName(), maxAge
	return c
}

// askSecondFactor answers a right password of a user with a second factor:
// a pending login, its cookie, and the code page or a JSON answer naming
// the methods the user can use.
func (h *signInRoutes) askSecondFactor(w http.ResponseWriter, r *http.Request, c credentials, user *store.User, factors store.Factors) error {
	return h.askSecondFactorAfter(w, r, c, user, factors, store.MethodPassword)
}

// askSecondFactorAfter is askSecondFactor after a first step other than
// the password (store.MethodProvider), which the session's method keeps.
func (h *signInRoutes) askSecondFactorAfter(w http.ResponseWriter, r *http.Request, c credentials, user *store.User,
	factors store.Factors, first string) error {
	token, err := h.store.CreatePendingLoginAfter(r.Context(), *user, first, c.Remember && h.RememberFor > 0)
	if errors.Is(err, store.ErrCredentialsChanged) {
		h.signInAttempt(r, c.Username, nil, loginFailure, store.FactorPassword)
		return h.refuseLogin(w, r, c)
	}
	if err != nil {
		return storeUnavailable(err)
	}
	http.SetCookie(w, h.pendingCookie(r, token, int(store.PendingLoginLifetime/time.Second)))
	factor := store.FactorPassword
	if first == store.MethodProvider {
		factor = store.FactorProvider
	}
	h.signInAttempt(r, c.Username, user, loginSecondFactorRequired, factor)
	h.logger.Info("login awaits a second factor", zap.String("username", user.Username), zap.String("client_ip", clientIP(r)))
	if c.form {
		return h.renderCodePage(w, r, http.StatusOK, c.Redirect, "", false, factors)
	}
	writeJSON(w, http.StatusOK, map[string]any{"second_factor": "required", "methods": factors.Methods()})
	return nil
}

// renderCodePage shows the second step's page; recovery says the error is
// the recovery code's.
func (h *signInRoutes) renderCodePage(w http.ResponseWriter, r *http.Request, status int, redirect, message string, recovery bool,
	factors store.Factors) error {
	page := web.SecondFactorPage{
		SiteName:      h.SiteName,
		Action:        h.LoginPath + "/second-factor",
		Redirect:      h.safeReturn(r, redirect),
		Error:         message,
		Recovery:      recovery,
		LoginHref:     h.LoginPath + "?redirect=" + url.QueryEscape(h.safeReturn(r, redirect)),
		TOTP:          factors.TOTP,
		RecoveryCodes: factors.RecoveryCodes > 0,
	}
	if factors.Passkeys > 0 {
		page.PasskeyAPI = h.APIPath
	}
	return renderPage(w, r, status, web.SecondFactorTemplate(), h.BuiltinPageCSP, page)
}

// secondFactorBody is what the second step reads, from JSON or a form.
type secondFactorBody struct {
	Code         string `json:"code"`
	RecoveryCode string `json:"recovery_code"`
	Redirect     string `json:"-"`
	form         bool
}

func readSecondFactor(r *http.Request) (secondFactorBody, error) {
	var b secondFactorBody
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/x-www-form-urlencoded" {
		b.form = true
		if err := r.ParseForm(); err != nil {
			return b, badForm(err)
		}
		b.Code, b.RecoveryCode, b.Redirect = r.PostFormValue("code"), r.PostFormValue("recovery_code"), r.PostFormValue("redirect")
	} else if err := request.DecodeJSONObject(r.Body, &b, "code", "recovery_code"); err != nil {
		return b, badBody(err)
	}
	if (b.Code == "") == (b.RecoveryCode == "") {
		return b, refuse(ReasonBadRequest, "Send either code or recovery_code")
	}
	if len(b.Code) > 16 || len(b.RecoveryCode) > 64 {
		return b, refuse(ReasonBadRequest, "Code is too long")
	}
	return b, nil
}

// serveSecondFactor finishes a pending login with a code or a recovery
// code: POST {api}/login/second-factor, and the code page's form at
// {login_path}/second-factor. Each check is reserved against the
// failed-login limits as a password check is, with the account's limit at
// most maxCodeFailuresPerAccount.
func (h *signInRoutes) serveSecondFactor(w http.ResponseWriter, r *http.Request, _ *caller) error {
	b, err := readSecondFactor(r)
	if err != nil {
		return err
	}
	var pending *store.PendingLogin
	token, ok := h.pendingToken(r)
	if ok {
		if pending, err = h.store.GetPendingLogin(r.Context(), token); err != nil {
			return storeUnavailable(err)
		}
	}
	if pending == nil {
		http.SetCookie(w, h.pendingCookie(r, "", -1))
		if b.form {
			return h.renderLoginPage(w, r, http.StatusUnauthorized, credentials{Redirect: b.Redirect}, msgPendingExpired)
		}
		return refuse(ReasonSecondFactorExpired, msgPendingExpired)
	}
	user, ip := pending.User, clientIP(r)
	attempt, step, right, err := h.reserveAndCheckCode(r, &user, b)
	if err != nil {
		return err
	}
	factor := step.Factor
	if right {
		// The factor is used up, the pending login ended and the session
		// started in one transaction: of requests racing with one pending
		// login, one signs in and the rest use up nothing.
		err := h.startSessionWith(w, r, &user, pending.Remember, func(ctx context.Context, p store.SessionParams) (string, *store.Session, error) {
			return h.store.FinishPendingLogin(ctx, token, step, p)
		})
		switch {
		case errors.Is(err, store.ErrFactorRefused):
			right = false
		case errors.Is(err, store.ErrNoPendingLogin):
			// Finished by another request, or expired meanwhile: not a
			// wrong code, so it counts as no failure.
			h.releaseAttempt(attempt)
			http.SetCookie(w, h.pendingCookie(r, "", -1))
			if b.form {
				return h.renderLoginPage(w, r, http.StatusUnauthorized, credentials{Redirect: b.Redirect}, msgPendingExpired)
			}
			return refuse(ReasonSecondFactorExpired, msgPendingExpired)
		case errors.Is(err, store.ErrCredentialsChanged), errors.Is(err, store.ErrUserNotFound):
			h.signInAttempt(r, user.Username, &user, loginFailure, factor)
			return refuse(ReasonSecondFactorExpired, msgPendingExpired)
		case err != nil:
			h.releaseAttempt(attempt)
			return storeUnavailable(err)
		}
	}
	if !right {
		if err := h.store.FailPendingLogin(r.Context(), token, MaxCodeFailures); err != nil {
			return storeUnavailable(err)
		}
		h.logger.Info("second factor failed", zap.String("username", user.Username), zap.String("client_ip", ip),
			zap.String("factor", factor))
		h.signInAttempt(r, user.Username, &user, loginFailure, factor)
		if b.form {
			factors, err := h.store.UserFactors(r.Context(), user.ID)
			if err != nil {
				return storeUnavailable(err)
			}
			return h.renderCodePage(w, r, http.StatusUnauthorized, b.Redirect, msgInvalidCode, factor == store.FactorRecoveryCode, factors)
		}
		return refuse(ReasonInvalidCode, msgInvalidCode)
	}
	if err := h.store.ClearLoginFailures(r.Context(), user.Username); err != nil {
		h.logger.Warn("clearing failed logins after a sign-in", zap.Error(err))
	}
	http.SetCookie(w, h.pendingCookie(r, "", -1))
	h.signInAttempt(r, user.Username, &user, loginSuccess, factor)
	return h.signedIn(w, r, credentials{form: b.form, Redirect: b.Redirect}, http.StatusOK, &user)
}

// reserveCode reserves a check of user's code against the failed-login
// limits, as a password check is, with the account's limit at most
// maxCodeFailuresPerAccount; past them it refuses with 429. The second
// step and a step-up both take it, so a code guessed at either counts for
// both.
func (h *attempts) reserveCode(r *http.Request, user *store.User) (store.Attempt, error) {
	ip := clientIP(r)
	limits := h.Throttle
	limits.PerAccount = min(limits.PerAccount, maxCodeFailuresPerAccount)
	attempt, err := h.store.ReserveLoginAttempt(r.Context(), user.Username, ip, limits)
	if err != nil {
		return attempt, storeUnavailable(err)
	}
	if attempt.Throttled() {
		h.logger.Warn("second factor throttled", zap.String("username", user.Username), zap.String("client_ip", ip))
		h.signInAttempt(r, user.Username, user, loginThrottled, "")
		return attempt, tooManyAttempts(attempt, "Too many wrong codes, try again later")
	}
	return attempt, nil
}

// reserveAndCheckCode reserves a code's check against the limits, then
// checks it (checkSecondFactor); a check that could not be made releases
// its reservation, as it says nothing of the code.
func (h *signInRoutes) reserveAndCheckCode(r *http.Request, user *store.User, b secondFactorBody) (store.Attempt, store.SecondStep, bool, error) {
	attempt, err := h.reserveCode(r, user)
	if err != nil {
		return attempt, store.SecondStep{}, false, err
	}
	step, right, err := h.checkSecondFactor(r, user.ID, b)
	if err != nil {
		h.releaseAttempt(attempt)
	}
	return attempt, step, right, err
}

// checkSecondFactor checks what can be checked of a factor before the
// database uses it up: a code against the user's authenticator. It returns
// the step to finish the pending login with, and false when the factor is
// wrong already; a recovery code is found right or wrong only as
// store.FinishPendingLogin uses it.
func (h *signInRoutes) checkSecondFactor(r *http.Request, userID store.UserID, b secondFactorBody) (store.SecondStep, bool, error) {
	if b.RecoveryCode != "" {
		return store.SecondStep{Factor: store.FactorRecoveryCode, RecoveryCodeHash: HashRecoveryCode(b.RecoveryCode)}, true, nil
	}
	step := store.SecondStep{Factor: store.FactorTOTP}
	if h.secrets == nil {
		return step, false, refuse(ReasonTotpOff, msgTOTPOff)
	}
	secret, confirmed, err := h.totpSecret(r, userID)
	if err != nil || !confirmed {
		return step, false, err
	}
	var ok bool
	step.TOTPStep, ok = matchTOTP(secret, b.Code, time.Now())
	return step, ok, nil
}

// pendingToken returns the pending cookie's value, if the request has one.
func (h *signInRoutes) pendingToken(r *http.Request) (string, bool) {
	c, err := r.Cookie(h.pendingCookieName())
	if err != nil || c.Value == "" {
		return "", false
	}
	return c.Value, true
}

// serveAdminResetSecondFactors removes a user's second factors and ends
// their sessions: DELETE {api}/admin/users/{username}/second-factors, for
// someone who lost their authenticator and their recovery codes.
func (h *adminRoutes) serveAdminResetSecondFactors(w http.ResponseWriter, r *http.Request, c *caller) error {
	user, err := h.adminTarget(r)
	if err != nil {
		return err
	}
	n, err := h.resetSecondFactors(r.Context(), c, user)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"ended": n})
	return nil
}

// enrolmentRequired refuses a user without a second factor under
// second_factor required.
func enrolmentRequired() *Refusal {
	return refuse(ReasonSecondFactorEnrolmentRequired, "Second factor enrolment required")
}

// sendToEnrol answers a request of a user who must set up a second factor
// first: a browser goes to the account page's section for it, anything
// else gets 403.
func (h *responder) sendToEnrol(w http.ResponseWriter, r *http.Request) error {
	if wantsHTML(r) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, h.AccountPath+"#two-step", http.StatusSeeOther)
		return nil
	}
	return h.Answer(w, r, enrolmentRequired())
}
