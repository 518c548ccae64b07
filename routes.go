package pgsession

import (
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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
	return userJSON{ID: u.ID, Username: u.Username, IsAdmin: u.IsAdmin}
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
// request itself, with 400 or 413, when the body cannot be read.
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
			answerBodyError(w, err)
			return c, false
		}
		c.Username, c.Password, c.Redirect = r.PostFormValue("username"), r.PostFormValue("password"), r.PostFormValue("redirect")
		c.Remember = r.PostFormValue("remember") == "on"
	default:
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&c); err != nil {
			answerBodyError(w, err)
			return c, false
		}
		if _, err := dec.Token(); err != io.EOF {
			writeJSONError(w, http.StatusBadRequest, "Request body must be one JSON object")
			return c, false
		}
	}
	return c, true
}

func answerBodyError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSONError(w, http.StatusRequestEntityTooLarge, "Request body too large")
		return
	}
	writeJSONError(w, http.StatusBadRequest, "Request body must be JSON {\"username\", \"password\"} or a form")
}

// serveLogin checks a username and password and starts a new session.
func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request, _ *caller) error {
	c, ok := readCredentials(w, r)
	if !ok {
		return nil
	}
	user, err := h.store.VerifyPassword(r.Context(), c.Username, c.Password)
	if errors.Is(err, store.ErrInvalidCredentials) {
		h.logger.Info("login failed", zap.String("username", c.Username), zap.String("client_ip", clientIP(r)))
		if c.form {
			return h.renderLoginPage(w, r, http.StatusUnauthorized, c, msgInvalidCredentials)
		}
		writeJSONError(w, http.StatusUnauthorized, msgInvalidCredentials)
		return nil
	}
	if err != nil {
		h.storeUnavailable(w, err)
		return nil
	}
	if !h.startSession(w, r, user, c.Remember) {
		return nil
	}
	if c.form {
		http.Redirect(w, r, safeRedirect(c.Redirect), http.StatusSeeOther)
		return nil
	}
	writeJSON(w, http.StatusOK, toUserJSON(*user))
	return nil
}

// serveRegister creates an account and logs it in, when registration is on.
func (h *Handler) serveRegister(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if !h.Registration {
		writeJSONError(w, http.StatusNotFound, "Registration is not enabled")
		return nil
	}
	c, ok := readCredentials(w, r)
	if !ok {
		return nil
	}
	user, err := h.store.CreateUser(r.Context(), c.Username, c.Password, false)
	var inputErr *store.InputError
	status, msg := 0, ""
	switch {
	case errors.As(err, &inputErr):
		status, msg = http.StatusBadRequest, capitalize(inputErr.Msg)
	case errors.Is(err, store.ErrUserExists):
		status, msg = http.StatusConflict, msgUsernameTaken
	case err != nil:
		h.storeUnavailable(w, err)
		return nil
	}
	if status != 0 {
		if c.form {
			return h.renderLoginPage(w, r, status, c, msg)
		}
		writeJSONError(w, status, msg)
		return nil
	}
	h.logger.Info("user registered", zap.String("username", user.Username), zap.String("client_ip", clientIP(r)))
	if !h.startSession(w, r, user, c.Remember) {
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
// a browser before login never becomes a logged-in one.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, user *store.User, remember bool) bool {
	if old, ok := h.token(r); ok {
		if err := h.store.DeleteSession(r.Context(), old); err != nil {
			h.storeUnavailable(w, err)
			return false
		}
	}
	remember = remember && h.rememberFor > 0
	lifetime := time.Duration(h.Lifetime)
	if remember {
		lifetime = h.rememberFor
	}
	token, _, err := h.store.CreateSession(r.Context(), store.NewSession{
		UserID:      user.ID,
		Lifetime:    lifetime,
		IdleTimeout: time.Duration(h.IdleTimeout),
		MaxPerUser:  h.MaxSessionsPerUser,
		UserAgent:   r.UserAgent(),
		IP:          clientIP(r),
	})
	if err != nil {
		h.storeUnavailable(w, err)
		return false
	}
	// Without remember me the cookie lasts as long as the browser session;
	// with it, as long as the session itself.
	cookie := h.sessionCookie(r, token)
	if remember {
		cookie.MaxAge = int(lifetime / time.Second)
	}
	http.SetCookie(w, cookie)
	h.logger.Info("login", zap.String("username", user.Username), zap.String("client_ip", clientIP(r)))
	return true
}

// serveLogout ends the session server-side and clears the cookie; it
// succeeds with or without a session, so a double click does no harm.
func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if token, ok := h.token(r); ok {
		if err := h.store.DeleteSession(r.Context(), token); err != nil {
			h.storeUnavailable(w, err)
			return nil
		}
	}
	http.SetCookie(w, h.clearCookie(r))
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
