package pgsession

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// Messages the routes answer with; the wrong-password one is the same for an
// unknown user, so it does not tell which names exist.
const (
	msgInvalidCredentials = "Invalid username or password"
	msgUsernameTaken      = "That username is not available"
)

// userJSON is how a user appears in the JSON routes.
type userJSON struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	IsAdmin  bool   `json:"is_admin"`
}

func toUserJSON(u store.User) userJSON {
	return userJSON{ID: string(u.ID), Username: u.Username, IsAdmin: u.IsAdmin}
}

// credentials is what login and register read, from JSON or a form.
type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Remember bool   `json:"remember"`
	Redirect string `json:"-"`
	form     bool
}

// readCredentials decodes a JSON body or an HTML form. It answers the
// request itself, with 400 or 413, when the body cannot be read or a field
// is given twice or is too long.
func readCredentials(w http.ResponseWriter, r *http.Request) (credentials, bool) {
	var c credentials
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		c.form = true
		var err error
		if mediaType == "multipart/form-data" {
			err = r.ParseMultipartForm(maxBodyBytes)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				answerDecodeError(w, err)
			} else {
				writeJSONError(w, http.StatusBadRequest, "Request body is not a valid form")
			}
			return c, false
		}
		for _, field := range []string{"username", "password", "redirect", "remember"} {
			if len(r.PostForm[field]) > 1 {
				writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("Field %q given twice", field))
				return c, false
			}
		}
		c.Username, c.Password, c.Redirect = r.PostFormValue("username"), r.PostFormValue("password"), r.PostFormValue("redirect")
		c.Remember = r.PostFormValue("remember") == "on"
	default:
		if err := decodeJSONObject(r.Body, &c, "username", "password", "remember"); err != nil {
			answerDecodeError(w, err)
			return c, false
		}
	}
	// Lengths are checked before anything is looked up or hashed: a clear
	// 400 beats a slow 401 for input no account could match.
	if utf8.RuneCountInString(c.Username) > store.MaxUsernameLength {
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("Username is longer than %d characters", store.MaxUsernameLength))
		return c, false
	}
	if len(c.Password) > store.MaxPasswordLength {
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("Password is longer than %d bytes", store.MaxPasswordLength))
		return c, false
	}
	return c, true
}

// serveLogin checks a username and password and starts a new session.
// Each check is reserved against the failed-login limits before the
// password is hashed (see store.ReserveLoginAttempt), so the limits hold
// under parallel guessing and across every server; past them, even the
// right password gets 429 until the window has passed.
func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request, _ *caller) error {
	c, ok := readCredentials(w, r)
	if !ok {
		return nil
	}
	if !h.cookieCanBeSet(w, r) {
		return nil
	}
	ip := clientIP(r)
	attempt, ok := h.reserveLogin(w, r, c.Username, ip)
	if !ok {
		return nil
	}
	user, err := h.store.VerifyPassword(r.Context(), c.Username, c.Password)
	if errors.Is(err, store.ErrInvalidCredentials) {
		h.logger.Info("login failed", zap.String("username", c.Username), zap.String("client_ip", ip))
		return h.refuseLogin(w, r, c)
	}
	if err != nil {
		h.releaseAttempt(attempt)
		h.passwordCheckFailed(w, err)
		return nil
	}
	if err := h.store.ClearLoginFailures(r.Context(), c.Username); err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	switch err := h.startSession(w, r, user, c.Remember); {
	case errors.Is(err, store.ErrCredentialsChanged), errors.Is(err, store.ErrUserNotFound):
		// The password was changed, or the user deleted, while this login
		// was being checked: what was verified is no longer valid.
		h.logger.Info("login failed: credentials changed during the login", zap.String("username", user.Username),
			zap.String("client_ip", ip))
		return h.refuseLogin(w, r, c)
	case err != nil:
		h.storeUnavailable(w, err)
		return nil
	}
	if c.form {
		http.Redirect(w, r, safeRedirect(c.Redirect), http.StatusSeeOther)
		return nil
	}
	writeJSON(w, http.StatusOK, toUserJSON(*user))
	return nil
}

// refuseLogin answers a login whose name and password do not match.
func (h *Handler) refuseLogin(w http.ResponseWriter, r *http.Request, c credentials) error {
	if c.form {
		return h.renderLoginPage(w, r, http.StatusUnauthorized, c, msgInvalidCredentials)
	}
	writeJSONError(w, http.StatusUnauthorized, msgInvalidCredentials)
	return nil
}

// reserveLogin reserves a password check for username from ip, or answers
// 429 past the failed-login limits (503 when the database fails).
func (h *Handler) reserveLogin(w http.ResponseWriter, r *http.Request, username, ip string) (store.Attempt, bool) {
	a, err := h.store.ReserveLoginAttempt(r.Context(), username, ip, h.throttle)
	if err != nil {
		h.storeUnavailable(w, err)
		return a, false
	}
	if a.Throttled() {
		h.logger.Warn("login throttled", zap.String("username", username), zap.String("client_ip", ip),
			zap.Int("account_failures", a.Account), zap.Int("ip_failures", a.IP))
		h.tooManyAttempts(w, a, "Too many failed logins, try again later")
		return a, false
	}
	return a, true
}

// tooManyAttempts answers 429 with the wait until a counted attempt ages out.
func (h *Handler) tooManyAttempts(w http.ResponseWriter, a store.Attempt, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(a.RetryAfter.Round(time.Second)/time.Second)))
	writeJSONError(w, http.StatusTooManyRequests, msg)
}

// releaseAttempt forgets a reservation whose password was never checked, so
// a busy server or a failing database does not count against the user. It
// is best effort and outlives the request, whose client may be gone.
func (h *Handler) releaseAttempt(a store.Attempt) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.store.ReleaseAttempt(ctx, a); err != nil {
		h.logger.Warn("releasing a reserved password check", zap.Error(err))
	}
}

// passwordCheckFailed answers a password check that could not be made.
func (h *Handler) passwordCheckFailed(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrBusy) {
		h.hashersBusy(w)
		return
	}
	h.storeUnavailable(w, err)
}

// hashersBusy answers a login that waited too long for its password check:
// the server is flooded with logins, and a moment later it may not be.
func (h *Handler) hashersBusy(w http.ResponseWriter) {
	if c := h.logger.Check(zapcore.WarnLevel, "too many password checks at once"); c != nil {
		c.Write()
	}
	w.Header().Set("Retry-After", "1")
	writeJSONError(w, http.StatusServiceUnavailable, "Too many logins at once, try again shortly")
}

// cookieCanBeSet refuses a login whose cookie the browser would drop: a
// __Host- or __Secure- cookie name needs HTTPS, and without this check the
// login would seem to work and then not.
func (h *Handler) cookieCanBeSet(w http.ResponseWriter, r *http.Request) bool {
	if h.secure(r) || !strings.HasPrefix(h.CookieName, "__Host-") && !strings.HasPrefix(h.CookieName, "__Secure-") {
		return true
	}
	h.logger.Error("login over plain HTTP with a cookie name that needs HTTPS", zap.String("cookie_name", h.CookieName))
	writeJSONError(w, http.StatusBadRequest, "The session cookie "+h.CookieName+" needs HTTPS: use https:// for this site")
	return false
}

// serveRegister creates an account and logs it in, when registration is
// on. Registrations are counted per client address, each costing a
// password hash: a client past max_registrations_per_ip (or its address past
// max_failed_logins_per_ip) gets 429 before anything is hashed.
func (h *Handler) serveRegister(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if !h.Registration {
		writeJSONError(w, http.StatusNotFound, "Registration is not enabled")
		return nil
	}
	c, ok := readCredentials(w, r)
	if !ok || !h.cookieCanBeSet(w, r) {
		return nil
	}
	status, msg := 0, ""
	var inputErr *store.InputError
	if err := errors.Join(store.ValidateUsername(c.Username), store.ValidatePassword(c.Password)); errors.As(err, &inputErr) {
		status, msg = http.StatusBadRequest, capitalize(inputErr.Msg)
	}
	var user *store.User
	if status == 0 {
		ip := clientIP(r)
		attempt, err := h.store.ReserveRegistration(r.Context(), ip, h.throttle)
		if err != nil {
			h.storeUnavailable(w, err)
			return nil
		}
		if attempt.Throttled() {
			h.logger.Warn("registration throttled", zap.String("client_ip", ip),
				zap.Int("registrations", attempt.Account), zap.Int("ip_attempts", attempt.IP))
			h.tooManyAttempts(w, attempt, "Too many sign-ups from your address, try again later")
			return nil
		}
		user, err = h.store.CreateUser(r.Context(), c.Username, c.Password, false)
		switch {
		case errors.As(err, &inputErr):
			status, msg = http.StatusBadRequest, capitalize(inputErr.Msg)
		case errors.Is(err, store.ErrUserExists):
			status, msg = http.StatusConflict, msgUsernameTaken
		case err != nil:
			h.releaseAttempt(attempt)
			h.passwordCheckFailed(w, err)
			return nil
		}
	}
	if status != 0 {
		if c.form {
			return h.renderLoginPage(w, r, status, c, msg)
		}
		writeJSONError(w, status, msg)
		return nil
	}
	h.logger.Info("user registered", zap.String("username", user.Username), zap.String("client_ip", clientIP(r)))
	if err := h.startSession(w, r, user, c.Remember); err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	if c.form {
		http.Redirect(w, r, safeRedirect(c.Redirect), http.StatusSeeOther)
		return nil
	}
	writeJSON(w, http.StatusCreated, toUserJSON(*user))
	return nil
}

// startSession creates a session with a fresh token and sets its cookie. A
// session the request already carried is ended first, so a token planted in
// a browser before login never becomes a logged-in one. The session is
// created only while user's credentials are still the ones verified; else
// the error is store.ErrCredentialsChanged (or store.ErrUserNotFound).
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, user *store.User, remember bool) error {
	if old, ok := h.token(r); ok {
		if err := h.store.DeleteSession(r.Context(), old); err != nil {
			return err
		}
	}
	remember = remember && h.rememberFor > 0
	lifetime := time.Duration(h.Lifetime)
	if remember {
		lifetime = h.rememberFor
	}
	token, _, err := h.store.CreateSession(r.Context(), store.SessionParams{
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
func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var storeErr error
	if token, ok := h.token(r); ok {
		h.app.cache.forget(keyOf(token))
		if err := h.store.DeleteSession(r.Context(), token); err != nil {
			if clientGone(r.Context(), err) {
				return nil
			}
			h.app.health.failed(err, false)
			storeErr = err
		}
	}
	http.SetCookie(w, h.clearCookie(r))
	// Clear-Site-Data also removes what scripts may have copied of the session.
	if h.ClearSiteDataCache {
		w.Header().Set("Clear-Site-Data", `"cookies", "cache"`)
	} else {
		w.Header().Set("Clear-Site-Data", `"cookies"`)
	}
	if storeErr != nil {
		w.Header().Set("Retry-After", retryAfterSeconds)
		writeJSONError(w, http.StatusServiceUnavailable, "Signed out in this browser and on this server, but the session store is unavailable, "+
			"so the session could not be ended everywhere")
		return nil
	}
	if r.URL.Path == h.LogoutPath {
		http.Redirect(w, r, h.LoginPath, http.StatusSeeOther)
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// serveMe returns the user of the current session.
func (h *Handler) serveMe(w http.ResponseWriter, r *http.Request, c *caller) error {
	writeJSON(w, http.StatusOK, toUserJSON(c.session.User))
	return nil
}

// serveLoginPage shows the login form, or sends a visitor who is already
// logged in on to where they were going.
func (h *Handler) serveLoginPage(w http.ResponseWriter, r *http.Request, _ *caller) error {
	redirect := r.URL.Query().Get("redirect")
	sess, _, err := h.session(r)
	if err == nil && sess != nil {
		http.Redirect(w, r, safeRedirect(redirect), http.StatusSeeOther)
		return nil
	}
	// A database failure still shows the form: the login itself will say
	// that the store is unavailable.
	return h.renderLoginPage(w, r, http.StatusOK, credentials{Redirect: redirect}, "")
}

func (h *Handler) renderLoginPage(w http.ResponseWriter, r *http.Request, status int, c credentials, message string) error {
	page := web.LoginPage{
		Title:      "Sign in",
		Action:     h.LoginPath,
		Redirect:   safeRedirect(c.Redirect),
		Username:   c.Username,
		Error:      message,
		Remember:   h.rememberFor > 0,
		Remembered: c.Remember,
	}
	if h.Registration {
		page.RegisterAction = h.APIPath + "/register"
	}
	return h.renderPage(w, r, status, h.template, h.csp, page)
}

// renderPage executes one of the HTML pages with the headers every page of
// the plugin carries: no caching, no framing, no leaking of the URL.
func (h *Handler) renderPage(w http.ResponseWriter, r *http.Request, status int, tmpl *template.Template, csp string, data any) error {
	var buf strings.Builder
	if err := tmpl.Execute(&buf, data); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Security-Policy", csp)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		io.WriteString(w, buf.String())
	}
	return nil
}

// sessionCookie is the cookie carrying a new session's token; it lasts as
// long as the browser session unless the caller sets MaxAge.
func (h *Handler) sessionCookie(r *http.Request, token string) *http.Cookie {
	return &http.Cookie{
		Name:     h.CookieName,
		Value:    token,
		Path:     "/",
		HttpOnly: true,
		Secure:   h.secure(r),
		SameSite: h.sameSite,
	}
}

// clearCookie tells the browser to drop the session cookie.
func (h *Handler) clearCookie(r *http.Request) *http.Cookie {
	c := h.sessionCookie(r, "")
	c.MaxAge = -1
	return c
}

func (h *Handler) secure(r *http.Request) bool {
	switch h.Secure {
	case "on":
		return true
	case "off":
		return false
	default:
		return r.TLS != nil
	}
}

// safeRedirect returns target when it is a path on this site, and "/"
// otherwise, so the login form cannot be used to send people elsewhere.
// Browsers read a backslash as a slash and drop tabs and newlines, so
// "/\evil.example" or "/\t/evil.example" would leave the site.
func safeRedirect(target string) string {
	if target == "" || target[0] != '/' || len(target) > 2048 {
		return "/"
	}
	if len(target) > 1 && (target[1] == '/' || target[1] == '\\') {
		return "/"
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return target
}

// clientIP is the client's address as Caddy determined it, with its
// trusted_proxies setting applied.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		return ip
	}
	return r.RemoteAddr
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
