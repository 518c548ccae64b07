package pgsession

import (
	"cmp"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap/zapcore"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// How the plugin answers when it answers instead of the site. The gate and
// the routes return a *refusal; answer renders it once, in one place: as a
// page for a browser and the plugin's own JSON for anything else, or, with
// error_pages caddy, handed to the site's handle_errors as a
// caddyhttp.Error, with a placeholder naming the reason.

// retryAfterStore is what a client is told to wait when the database is down.
const retryAfterStore = 5 * time.Second

// reasonPlaceholder names why a request was refused, for handle_errors.
const reasonPlaceholder = "http.auth.pg_session.reason"

// refusal is a request the plugin turned away.
type refusal struct {
	status      int
	reason      reason // the name handle_errors sees
	message     string // what the client is told
	retryAfter  time.Duration
	clearCookie bool // the request's session cookie is no good: drop it
	// endedOnRenewal marks a session_expired found by the renewal's write:
	// the session was live in memory, and its row is gone.
	endedOnRenewal bool
	err            error // what failed underneath, for the log; nil when the client is at fault
}

func (r *refusal) Error() string { return r.message }
func (r *refusal) Unwrap() error { return r.err }

// refuse makes a refusal for something the client did, with the status
// its reason goes with.
func refuse(why reason, message string) *refusal {
	return &refusal{status: reasonStatus[why], reason: why, message: message}
}

// storeUnavailable refuses with 503 when the database fails. The cookie is
// left alone: users are not logged out because the database blinked.
func storeUnavailable(err error) *refusal {
	return &refusal{status: reasonStatus[reasonStoreUnavailable], reason: reasonStoreUnavailable,
		message: "Session store unavailable, try again shortly", retryAfter: retryAfterStore, err: err}
}

// hashersBusy refuses a password check that waited too long for its turn:
// the server is flooded with logins, and a moment later it may not be.
func hashersBusy() *refusal {
	return &refusal{status: reasonStatus[reasonBusy], reason: reasonBusy,
		message: "Too many logins at once, try again shortly", retryAfter: time.Second}
}

// tooManyAttempts refuses past a throttle, until a counted attempt ages out.
func tooManyAttempts(a store.Attempt, message string) *refusal {
	return &refusal{status: reasonStatus[reasonThrottled], reason: reasonThrottled, message: message, retryAfter: a.RetryAfter}
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
	case reasonStoreUnavailable:
		h.app.health.failed(ref.err, false)
	case reasonBusy:
		if c := h.logger.Check(zapcore.WarnLevel, "too many password checks at once"); c != nil {
			c.Write()
		}
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if ref.retryAfter > 0 {
		hdr.Set("Retry-After", strconv.Itoa(retrySeconds(ref.retryAfter)))
	}
	if ref.clearCookie {
		http.SetCookie(w, h.clearCookie(r))
	}
	if h.caddyErrorPages {
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Set(reasonPlaceholder, string(ref.reason))
		}
		return caddyhttp.Error(ref.status, ref)
	}
	if prefersHTML(r) {
		return h.refusalPage(w, r, ref)
	}
	writeJSONError(w, ref.status, ref.message)
	return nil
}

// retrySeconds is how long a client is told to wait, in whole seconds, at
// least one.
func retrySeconds(d time.Duration) int {
	return int(max(d.Round(time.Second), time.Second) / time.Second)
}

// Headings of the refusal pages, by status; any other status is named by
// http.StatusText.
var refusalHeadings = map[int]string{
	http.StatusBadRequest:            "Something is wrong with that request",
	http.StatusUnauthorized:          "Please sign in",
	http.StatusForbidden:             "Not allowed",
	http.StatusNotFound:              "Not found",
	http.StatusMethodNotAllowed:      "Not available here",
	http.StatusConflict:              "Already taken",
	http.StatusRequestEntityTooLarge: "Too much data",
	http.StatusTooManyRequests:       "Too many attempts",
	http.StatusServiceUnavailable:    "Temporarily unavailable",
}

// refusalExplanations replace, on a page, the messages written for
// developers rather than for the person at the browser.
var refusalExplanations = map[reason]string{
	reasonCrossOrigin:      "The request came from another site, so it was refused to protect your account.",
	reasonMethodNotAllowed: "This address is not a page you can open: it only takes what the site's own forms send.",
}

// refusalPage answers a browser's refused request with a page in the style
// of the login page rather than JSON: the same status and headers, what
// went wrong in words, when to try again, and a way on.
func (h *Handler) refusalPage(w http.ResponseWriter, r *http.Request, ref *refusal) error {
	page := web.MessagePage{
		Status:  ref.status,
		Heading: cmp.Or(refusalHeadings[ref.status], http.StatusText(ref.status)),
		Message: sentence(cmp.Or(refusalExplanations[ref.reason], ref.message)),
	}
	if ref.retryAfter > 0 {
		page.Detail = "Try again in " + waitText(retrySeconds(ref.retryAfter)) + "."
	}
	back := h.returnTo(r)
	switch ref.status {
	case http.StatusServiceUnavailable:
		page.Links = []web.Link{{Href: back, Text: "Try again"}}
	case http.StatusUnauthorized:
		page.Links = []web.Link{{Href: h.loginLink(back), Text: "Sign in"}}
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		page.Links = []web.Link{{Href: back, Text: "Go back"}}
	}
	if len(page.Links) == 0 || page.Links[0].Href != h.Home {
		page.Links = append(page.Links, h.homeLink())
	}
	return h.renderMessage(w, r, ref.status, page)
}

// returnTo is where a person can take up what they were doing: the same
// address after a GET, and after a form, the page of this site it was sent
// from (its Referer), or else the login page. It is always a path on this
// site, whatever the request said.
func (h *Handler) returnTo(r *http.Request) string {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return request.SafeRedirect(r.URL.RequestURI())
	}
	if from, err := url.Parse(r.Referer()); err == nil && (from.Scheme == "http" || from.Scheme == "https") && from.Host == r.Host {
		return request.SafeRedirect(from.RequestURI())
	}
	return h.LoginPath
}

// loginLink is the login page, sending the person on to target once signed in.
func (h *Handler) loginLink(target string) string {
	if target == "/" || target == h.LoginPath {
		return h.LoginPath
	}
	return h.LoginPath + "?redirect=" + url.QueryEscape(target)
}

// homeLink is the way back to the site from one of the plugin's pages.
func (h *Handler) homeLink() web.Link {
	if h.SiteName != "" {
		return web.Link{Href: h.Home, Text: "Go to " + h.SiteName}
	}
	return web.Link{Href: h.Home, Text: "Go to the home page"}
}

// renderMessage shows a message page, named for the site.
func (h *Handler) renderMessage(w http.ResponseWriter, r *http.Request, status int, page web.MessagePage) error {
	page.SiteName = h.SiteName
	return renderPage(w, r, status, web.DefaultMessageTemplate(), h.builtinPageCSP, page)
}

// waitText says how long seconds is, for people, rounded up: "5 seconds",
// "4 minutes", "3 hours".
func waitText(seconds int) string {
	switch {
	case seconds < 60:
		return plural(seconds, "second")
	case seconds < 2*60*60:
		return plural((seconds+59)/60, "minute")
	default:
		return plural((seconds+60*60-1)/(60*60), "hour")
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// sentence ends a message with a full stop, as the pages' paragraphs are;
// the JSON messages have none.
func sentence(s string) string {
	if s == "" || strings.ContainsAny(s[len(s)-1:], ".!?") {
		return s
	}
	return s + "."
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
	return prefersHTML(r)
}

// prefersHTML tells a browser from a script, whatever the method (a form
// is sent by a browser too): its Accept header ranks HTML above JSON, as
// every browser's navigation does ("text/html,…,*/*;q=0.8"). A script
// asking for JSON, anything (*/*), or nothing in particular gets JSON, and
// so does a tie.
func prefersHTML(r *http.Request) bool {
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return false
	}
	htmlQ, jsonQ := acceptQualities(strings.Join(accept, ","))
	return htmlQ > jsonQ
}

// acceptQualities returns the highest quality an Accept header gives HTML
// (text/html, application/xhtml+xml) and JSON (application/json, a +json
// type, application/*), 0 for one it does not name. Wildcards other than
// application/* count for neither: every browser sends */*.
func acceptQualities(accept string) (htmlQ, jsonQ float64) {
	for accept != "" {
		var mediaRange string
		mediaRange, accept, _ = strings.Cut(accept, ",")
		mediaType, params, _ := strings.Cut(mediaRange, ";")
		mediaType = strings.TrimSpace(mediaType)
		q := 1.0
		for params != "" {
			var param string
			param, params, _ = strings.Cut(params, ";")
			if name, value, ok := strings.Cut(param, "="); ok && strings.EqualFold(strings.TrimSpace(name), "q") {
				v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
				if err != nil || v < 0 || v > 1 {
					v = 0 // a range with a broken quality counts for nothing
				}
				q = v
			}
		}
		switch {
		case strings.EqualFold(mediaType, "text/html"), strings.EqualFold(mediaType, "application/xhtml+xml"):
			htmlQ = max(htmlQ, q)
		case strings.EqualFold(mediaType, "application/json"), strings.EqualFold(mediaType, "application/*"),
			len(mediaType) > 5 && strings.EqualFold(mediaType[len(mediaType)-5:], "+json"):
			jsonQ = max(jsonQ, q)
		}
	}
	return htmlQ, jsonQ
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
