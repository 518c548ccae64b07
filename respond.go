package pgsession

import (
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap/zapcore"

	"github.com/pgsession/caddy-pgsession/store"
)

// How the plugin answers when it answers instead of the site. The gate and
// the routes return a *refusal; answer renders it once, in one place: as
// the plugin's own JSON, or, with error_pages caddy, handed to the site's
// handle_errors as a caddyhttp.Error, with a placeholder naming the reason.

// retryAfterStore is what a client is told to wait when the database is down.
const retryAfterStore = 5 * time.Second

// reasonPlaceholder names why a request was refused, for handle_errors.
const reasonPlaceholder = "http.auth.pg_session.reason"

// refusal is a request the plugin turned away.
type refusal struct {
	status      int
	reason      string // a short name for handle_errors: not_authenticated, throttled, …
	message     string // what the client is told
	retryAfter  time.Duration
	clearCookie bool  // the request's session cookie is no good: drop it
	err         error // what failed underneath, for the log; nil when the client is at fault
}

func (r *refusal) Error() string { return r.message }
func (r *refusal) Unwrap() error { return r.err }

// refuse makes a refusal for something the client did.
func refuse(status int, reason, message string) *refusal {
	return &refusal{status: status, reason: reason, message: message}
}

// storeUnavailable refuses with 503 when the database fails. The cookie is
// left alone: users are not logged out because the database blinked.
func storeUnavailable(err error) *refusal {
	return &refusal{status: http.StatusServiceUnavailable, reason: "store_unavailable",
		message: "Session store unavailable, try again shortly", retryAfter: retryAfterStore, err: err}
}

// hashersBusy refuses a password check that waited too long for its turn:
// the server is flooded with logins, and a moment later it may not be.
func hashersBusy() *refusal {
	return &refusal{status: http.StatusServiceUnavailable, reason: "busy",
		message: "Too many logins at once, try again shortly", retryAfter: time.Second}
}

// tooManyAttempts refuses past a throttle, until a counted attempt ages out.
func tooManyAttempts(a store.Attempt, message string) *refusal {
	return &refusal{status: http.StatusTooManyRequests, reason: "throttled", message: message, retryAfter: a.RetryAfter}
}

// passwordCheckFailed refuses a password check that could not be made.
func passwordCheckFailed(err error) *refusal {
	if errors.Is(err, store.ErrBusy) {
		return hashersBusy()
	}
	return storeUnavailable(err)
}

// answer renders what the gate or a route returned: nothing for nil (it
// answered itself), a refusal as the plugin's JSON or through the site's
// handle_errors, and anything else as Caddy's 500.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, err error) error {
	if err == nil {
		return nil
	}
	var ref *refusal
	if !errors.As(err, &ref) {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	if ref.err != nil && clientGone(r.Context(), ref.err) {
		return nil // nobody is left to answer
	}
	switch ref.reason {
	case "store_unavailable":
		h.app.health.failed(ref.err, false)
	case "busy":
		if c := h.logger.Check(zapcore.WarnLevel, "too many password checks at once"); c != nil {
			c.Write()
		}
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if ref.retryAfter > 0 {
		hdr.Set("Retry-After", strconv.Itoa(int(max(ref.retryAfter.Round(time.Second), time.Second)/time.Second)))
	}
	if ref.clearCookie {
		http.SetCookie(w, h.clearCookie(r))
	}
	if h.caddyErrorPages {
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Set(reasonPlaceholder, ref.reason)
		}
		return caddyhttp.Error(ref.status, ref)
	}
	writeJSONError(w, ref.status, ref.message)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// renderPage executes one of the HTML pages with the headers every page of
// the plugin carries: no caching, no framing, no leaking of the URL.
func renderPage(w http.ResponseWriter, r *http.Request, status int, tmpl *template.Template, csp string, data any) error {
	var buf strings.Builder
	if err := tmpl.Execute(&buf, data); err != nil {
		return err
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

// wantsHTML tells a browser navigation from an API call: only the former
// is worth redirecting to a login page.
func wantsHTML(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
