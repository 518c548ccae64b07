package routes

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// TOTP (RFC 6238): a user sets up an authenticator app with a secret, proves
// it with a code, and from then on signs in with a code after the password.
// Recovery codes stand in for the app when it is lost.

const (
	// TOTPPeriod and totpDigits are what every authenticator app assumes.
	TOTPPeriod = 30
	totpDigits = otp.DigitsSix
	// totpSkew is how many steps before and after the current one a code
	// may come from, for clocks that are a little off.
	totpSkew = 1
	// recoveryCodeCount is how many recovery codes a user gets, each of
	// recoveryCodeBytes random bytes (80 bits: too many to guess, so a
	// plain SHA-256 keeps them safe in the database).
	recoveryCodeCount = 10
	recoveryCodeBytes = 10
)

const msgTOTPOff = "TOTP is off: set secrets_key in the pg_session global option"

// totpOff refuses the TOTP routes of a server without secrets_key.
func (h *factors) totpOff() error {
	if h.secrets == nil {
		return refuse(ReasonTotpOff, msgTOTPOff)
	}
	return nil
}

// issuer names the site in authenticator apps: site_name, else the host.
func (h *factors) issuer(r *http.Request) string {
	if h.SiteName != "" {
		return h.SiteName
	}
	return hostOnly(r.Host)
}

// totpKey describes a user's secret as an otpauth:// URI, for the QR code.
func (h *factors) totpKey(r *http.Request, username, secret string) (*otp.Key, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		return nil, err
	}
	return totp.Generate(totp.GenerateOpts{Issuer: h.issuer(r), AccountName: username, Secret: raw,
		Period: TOTPPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
}

// setupTOTP gives the user a new, unconfirmed secret and returns its key;
// the secret is stored encrypted. 409 when one is already on.
func (h *accountRoutes) setupTOTP(r *http.Request, user store.User) (*otp.Key, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: h.issuer(r), AccountName: user.Username,
		Period: TOTPPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, fmt.Errorf("generating a TOTP secret: %w", err)
	}
	err = h.store.SetTOTPSecret(r.Context(), user.ID, h.secrets.seal(string(user.ID), key.Secret()))
	if errors.Is(err, store.ErrTOTPEnabled) {
		return nil, refuse(ReasonTotpOn, "An authenticator is already on: turn it off first")
	}
	if err != nil {
		return nil, storeUnavailable(err)
	}
	return key, nil
}

// totpSecret reads and decrypts a user's secret; nil when they have none.
func (h *factors) totpSecret(r *http.Request, userID store.UserID) (secret string, confirmed bool, err error) {
	t, err := h.store.GetTOTP(r.Context(), userID)
	if errors.Is(err, store.ErrNoTOTP) {
		return "", false, nil
	}
	if err != nil {
		return "", false, storeUnavailable(err)
	}
	secret, err = h.secrets.open(string(userID), t.Secret)
	if err != nil {
		h.logger.Error("reading a TOTP secret", zap.String("user_id", string(userID)), zap.Error(err))
		return "", false, refuse(ReasonSecretUnreadable,
			"The stored authenticator secret cannot be read: ask an administrator to reset your second factor")
	}
	return secret, t.Confirmed, nil
}

// matchTOTP returns the time step of the code, when it is right for secret
// at now (within totpSkew steps).
func matchTOTP(secret, code string, now time.Time) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != totpDigits.Length() {
		return 0, false
	}
	step := now.Unix() / TOTPPeriod
	for s := step - totpSkew; s <= step+totpSkew; s++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*TOTPPeriod, 0), totp.ValidateOpts{
			Period: TOTPPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return s, true
		}
	}
	return 0, false
}

// newRecoveryCodes returns fresh recovery codes, as shown to the user
// (xxxx-xxxx-xxxx-xxxx), and their hashes, as stored.
func newRecoveryCodes() ([]string, [][]byte) {
	codes := make([]string, recoveryCodeCount)
	hashes := make([][]byte, recoveryCodeCount)
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for i := range codes {
		b := make([]byte, recoveryCodeBytes)
		rand.Read(b)
		s := strings.ToLower(enc.EncodeToString(b))
		codes[i] = s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
		hashes[i] = HashRecoveryCode(codes[i])
	}
	return codes, hashes
}

// HashRecoveryCode hashes a code as typed: case, spaces and dashes do not matter.
func HashRecoveryCode(code string) []byte {
	code = strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	sum := sha256.Sum256([]byte(code))
	return sum[:]
}

// confirmTOTP turns the caller's new authenticator on when code is right
// for it, ends their other sessions, and returns their recovery codes.
func (h *accountRoutes) confirmTOTP(r *http.Request, c *caller, code string) ([]string, error) {
	user := c.session.User
	secret, confirmed, err := h.totpSecret(r, user.ID)
	if err != nil {
		return nil, err
	}
	if secret == "" || confirmed {
		return nil, refuse(ReasonNoTotpSetup, "No authenticator is being set up: start the setup first")
	}
	step, ok := matchTOTP(secret, code, time.Now())
	if !ok {
		return nil, refuse(ReasonWrongCode, "That code is not right: check the app's clock and try the next one")
	}
	codes, hashes := newRecoveryCodes()
	n, err := h.store.ConfirmTOTP(r.Context(), user.ID, step, hashes, c.token)
	if errors.Is(err, store.ErrNoTOTP) {
		return nil, refuse(ReasonNoTotpSetup, "No authenticator is being set up: start the setup first")
	}
	if err != nil {
		return nil, storeUnavailable(err)
	}
	h.memory.ForgetUser(user.ID)
	h.logger.Info("TOTP turned on", zap.String("username", user.Username), zap.Int64("sessions_ended", n))
	return codes, nil
}

// disableTOTP turns the caller's authenticator off after checking their
// password, throttled as a password change is.
func (h *accountRoutes) disableTOTP(r *http.Request, c *caller, currentPassword string) error {
	if err := h.checkCurrentPassword(r, c, currentPassword); err != nil {
		return err
	}
	n, err := h.store.DisableTOTP(r.Context(), c.session.User.ID, c.token)
	if errors.Is(err, store.ErrNoTOTP) {
		return refuse(ReasonNoTotp, "No authenticator is on")
	}
	if err != nil {
		return storeUnavailable(err)
	}
	h.memory.ForgetUser(c.session.User.ID)
	h.logger.Info("TOTP turned off", zap.String("username", c.session.User.Username), zap.Int64("sessions_ended", n))
	return nil
}

// serveTOTPSetup starts setting up an authenticator: POST {api}/totp/setup.
func (h *accountRoutes) serveTOTPSetup(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.totpOff(); err != nil {
		return err
	}
	key, err := h.setupTOTP(r, c.session.User)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"secret": key.Secret(), "uri": key.URL()})
	return nil
}

// serveTOTPConfirm turns the new authenticator on: POST {api}/totp/confirm.
func (h *accountRoutes) serveTOTPConfirm(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.totpOff(); err != nil {
		return err
	}
	var body struct {
		Code string `json:"code"`
	}
	if err := request.DecodeJSONObject(r.Body, &body, "code"); err != nil {
		return badBody(err)
	}
	codes, err := h.confirmTOTP(r, c, body.Code)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string][]string{"recovery_codes": codes})
	return nil
}

// serveTOTPDisable turns the authenticator off: DELETE {api}/totp.
func (h *accountRoutes) serveTOTPDisable(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.totpOff(); err != nil {
		return err
	}
	var body struct {
		CurrentPassword string `json:"current_password"`
	}
	if err := request.DecodeJSONObject(r.Body, &body, "current_password"); err != nil {
		return badBody(err)
	}
	if err := h.disableTOTP(r, c, body.CurrentPassword); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// addTwoStep fills in the account page's "Two-step sign-in" section, when
// TOTP is on for the server: the state of the user's authenticator, and
// the QR code of one being set up.
func (h *accountRoutes) addTwoStep(r *http.Request, page *web.AccountPage, sess *store.Session) error {
	if h.secrets == nil {
		return nil
	}
	two := &web.AccountTwoStep{Required: h.RequireSecondFactor && !sess.SecondFactor}
	page.TwoStep = two
	secret, confirmed, err := h.totpSecret(r, sess.User.ID)
	if err != nil {
		return err
	}
	switch {
	case confirmed:
		two.On = true
		factors, err := h.store.UserFactors(r.Context(), sess.User.ID)
		if err != nil {
			return storeUnavailable(err)
		}
		two.CodesLeft = factors.RecoveryCodes
	case secret != "":
		key, err := h.totpKey(r, sess.User.Username, secret)
		if err != nil {
			return err
		}
		qr, err := web.QRCodeSVG(key.URL(), "QR code for your authenticator app")
		if err != nil {
			return err
		}
		two.Setup = &web.AccountTOTPSetup{QRCode: qr, Secret: secret}
	}
	return nil
}

// serveTwoStepForm carries out the account page's two-step forms. Setting
// up goes back to the page, which shows the QR code; confirming shows the
// page at once with the recovery codes, which are never shown again.
func (h *accountRoutes) serveTwoStepForm(w http.ResponseWriter, r *http.Request, c *caller, back func(key, value string) error) error {
	if err := h.totpOff(); err != nil {
		return err
	}
	var ref *Refusal
	switch r.PostFormValue("action") {
	case "totp-setup":
		if _, err := h.setupTOTP(r, c.session.User); err != nil {
			return err
		}
		return back("setup", "totp")
	case "totp-confirm":
		codes, err := h.confirmTOTP(r, c, r.PostFormValue("code"))
		switch {
		case errors.As(err, &ref) && ref.reason == ReasonWrongCode:
			return back("error", "wrong-code")
		case errors.As(err, &ref) && ref.reason == ReasonNoTotpSetup:
			return back("error", "no-totp-setup")
		case err != nil:
			return err
		}
		// The session was carried over to the new credentials: read it again.
		sess, err := h.sessionRow(r)
		if err != nil {
			return err
		}
		if sess == nil {
			return sessionExpired()
		}
		page, err := h.accountPage(r, sess)
		if err != nil {
			return err
		}
		page.TwoStep.RecoveryCodes = codes
		return renderPage(w, r, http.StatusOK, web.DefaultAccountTemplate(), h.BuiltinPageCSP, page)
	default: // totp-disable
		err := h.disableTOTP(r, c, r.PostFormValue("current_password"))
		switch {
		case err == nil:
			return back("done", "totp-off")
		case errors.As(err, &ref) && ref.reason == ReasonWrongPassword:
			return back("error", "totp-password")
		}
		return err
	}
}
