package routes

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

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// How the plugin answers when it answers instead of the site. The gate and
// the routes return a *Refusal; answer renders it once, in one place: as a
// page for a browser and the plugin's own JSON for anything else, or, with
// error_pages caddy, handed to the site's handle_errors as a
// caddyhttp.Error, with a placeholder naming the reason.

// retryAfterStore is what a client is told to wait when the database is down.
const retryAfterStore = 5 * time.Second

// ReasonPlaceholder names why a request was refused, for handle_errors.
const ReasonPlaceholder = "http.auth.pg_session.reason"

// refusal is a request the plugin turned away.
type Refusal struct {
	status      int
	reason      Reason // the name handle_errors sees
	message     string // what the client is told
	retryAfter  time.Duration
	clearCookie bool // the request's session cookie is no good: drop it
	// endedOnRenewal marks a session_expired found by the renewal's write:
	// the session was live in memory, and its row is gone.
	endedOnRenewal bool
	err            error  // what failed underneath, for the log; nil when the client is at fault
	user           string // forbidden: who is signed in, for the page
}

func (r *Refusal) Error() string { return r.message }
func (r *Refusal) Unwrap() error { return r.err }

// Reason is why the request was refused.
func (r *Refusal) Reason() Reason { return r.reason }

// EndedOnRenewal says that the session was live in memory and its row
// was found gone when the renewal wrote it.
func (r *Refusal) EndedOnRenewal() bool { return r.endedOnRenewal }

// Refuse is refuse, for the gate.
func Refuse(why Reason, message string) *Refusal { return refuse(why, message) }

// refuse makes a refusal for something the client did, with the status
// its reason goes with.
func refuse(why Reason, message string) *Refusal {
	return &Refusal{status: ReasonStatus[why], reason: why, message: message}
}

// storeUnavailable refuses with 503 when the database fails. The cookie is
// left alone: users are not logged out because the database blinked.
func storeUnavailable(err error) *Refusal {
	return &Refusal{status: ReasonStatus[ReasonStoreUnavailable], reason: ReasonStoreUnavailable,
		message: "Session store unavailable, try again shortly", retryAfter: retryAfterStore, err: err}
}

// hashersBusy refuses a password check that waited too long for its turn:
// the server is flooded with logins, and a moment later it may not be.
func hashersBusy() *Refusal {
	return &Refusal{status: ReasonStatus[ReasonBusy], reason: ReasonBusy,
		message: "Too many logins at once, try again shortly", retryAfter: time.Second}
}

// tooManyAttempts refuses past a throttle, until a counted attempt ages out.
func tooManyAttempts(a store.Attempt, message string) *Refusal {
	return &Refusal{status: ReasonStatus[ReasonThrottled], reason: ReasonThrottled, message: message, retryAfter: a.RetryAfter}
}

// passwordCheckFailed refuses a password check that could not be made.
func passwordCheckFailed(err error) *Refusal {
	if errors.Is(err, store.ErrBusy) {
		return hashersBusy()
	}
	return storeUnavailable(err)
}

// answer renders what the gate or a route returned: nothing for nil (it
// answered itself), a refusal as the plugin's JSON or through the site's
// handle_errors, and anything else as Caddy's 500.
func (h *responder) Answer(w http.ResponseWriter, r *http.Request, err error) error {
	if err == nil {
		return nil
	}
	var ref *Refusal
	if !errors.As(err, &ref) {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	if ref.err != nil && engine.ClientGone(r.Context(), ref.err) {
		return nil // nobody is left to answer
	}
	switch ref.reason {
	case ReasonStoreUnavailable:
		h.memory.StoreFailed(ref.err)
	case ReasonBusy:
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
		h.dropCookie(w, r)
	}
	if h.CaddyErrorPages {
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Set(ReasonPlaceholder, string(ref.reason))
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
	http.StatusGone:                  "No longer valid",
	http.StatusMisdirectedRequest:    "Sign-in is misconfigured",
	http.StatusServiceUnavailable:    "Temporarily unavailable",
}

// refusalExplanations replace, on a page, the messages written for
// developers rather than for the person at the browser.
var refusalExplanations = map[Reason]string{
	ReasonCrossOrigin:      "The request came from another site, so it was refused to protect your account.",
	ReasonMethodNotAllowed: "This address is not a page you can open: it only takes what the site's own forms send.",
}

// refusalPage answers a browser's refused request with a page in the style
// of the login page rather than JSON: the same status and headers, what
// went wrong in words, when to try again, and a way on.
func (h *responder) refusalPage(w http.ResponseWriter, r *http.Request, ref *Refusal) error {
	page := web.MessagePage{
		Status:  ref.status,
		Heading: cmp.Or(refusalHeadings[ref.status], http.StatusText(ref.status)),
		Message: sentence(cmp.Or(refusalExplanations[ref.reason], ref.message)),
	}
	if ref.retryAfter > 0 {
		page.Detail = "Try again in " + waitText(retrySeconds(ref.retryAfter)) + "."
	}
	if ref.reason == ReasonForbidden {
		return h.forbiddenPage(w, r, ref)
	}
	back := h.returnTo(r)
	switch ref.status {
	case http.StatusServiceUnavailable:
		page.Links = []web.Link{{Href: back, Text: "Try again"}}
	case http.StatusUnauthorized:
		page.Links = []web.Link{{Href: h.signInURL(r, back), Text: "Sign in"}}
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		page.Links = []web.Link{{Href: back, Text: "Go back"}}
	}
	if len(page.Links) == 0 || page.Links[0].Href != h.Home {
		page.Links = append(page.Links, h.homeLink())
	}
	return h.renderMessage(w, r, ref.status, page)
}

// forbiddenPage tells a signed-in person that a rule keeps them out of
// this page: who they are signed in as, so that someone on the wrong
// account can see it and sign out, and the way back to the site.
func (h *responder) forbiddenPage(w http.ResponseWriter, r *http.Request, ref *Refusal) error {
	home := "Back to the home page"
	if h.SiteName != "" {
		home = "Back to " + h.SiteName
	}
	return h.renderMessage(w, r, ref.status, web.MessagePage{
		Status:  ref.status,
		Heading: "Not allowed",
		Message: "You are signed in as " + ref.user + ", who may not open this page.",
		Detail:  "If you have another account that may, sign out and sign in with it.",
		Action:  h.LogoutPath,
		Button:  "Sign out",
		Links:   []web.Link{{Href: h.Home, Text: home}},
	})
}

// returnTo is where a person can take up what they were doing: the same
// address after a GET, and after a form, the page of this site it was sent
// from (its Referer), or else the login page. It is always a path on this
// site, whatever the request said.
func (h *responder) returnTo(r *http.Request) string {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return request.SafeRedirect(r.URL.RequestURI())
	}
	if from, err := url.Parse(r.Referer()); err == nil && (from.Scheme == "http" || from.Scheme == "https") && from.Host == r.Host {
		return request.SafeRedirect(from.RequestURI())
	}
	return h.LoginPath
}

// loginLink is the login page, sending the person on to target once signed in.
func (h *responder) loginLink(target string) string {
	if target == "/" || target == h.LoginPath {
		return h.LoginPath
	}
	return h.LoginPath + "?redirect=" + url.QueryEscape(target)
}

// homeLink is the way back to the site from one of the plugin's pages.
func (h *responder) homeLink() web.Link {
	if h.SiteName != "" {
		return web.Link{Href: h.Home, Text: "Go to " + h.SiteName}
	}
	return web.Link{Href: h.Home, Text: "Go to the home page"}
}

// renderMessage shows a message page, named for the site.
func (h *responder) renderMessage(w http.ResponseWriter, r *http.Request, status int, page web.MessagePage) error {
	page.SiteName = h.SiteName
	return renderPage(w, r, status, web.DefaultMessageTemplate(), h.BuiltinPageCSP, page)
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
	if hdr.Get("Referrer-Policy") == "" {
		// A page whose address carries a token has said no-referrer.
		hdr.Set("Referrer-Policy", "same-origin")
	}
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

// RefuseGated answers a request the gate does not let through: a browser
// goes to the login page, or to set up the second factor asked of it;
// anything else gets the refusal.
func (h *responder) RefuseGated(w http.ResponseWriter, r *http.Request, ref *Refusal) error {
	switch ref.reason {
	case ReasonNotAuthenticated, ReasonSessionExpired:
		if wantsHTML(r) {
			return h.sendToLogin(w, r)
		}
	case ReasonSecondFactorEnrolmentRequired:
		return h.sendToEnrol(w, r)
	}
	return h.Answer(w, r, ref)
}

// RefuseEnded answers a request whose session ended while it was being
// served, before its response began, exactly as gate and sendToLogin answer
// the session's next request: a browser goes to the login page, anything
// else gets 401 session_expired (through handle_errors with error_pages
// caddy), and the cookie is cleared. What the site had set of a response it
// never sent goes first.
func (h *responder) RefuseEnded(w http.ResponseWriter, r *http.Request) error {
	hdr := w.Header()
	for _, name := range unsentResponseHeaders {
		delete(hdr, name)
	}
	if wantsHTML(r) {
		hdr.Set("Cache-Control", "no-store")
		h.dropCookie(w, r)
		http.Redirect(w, r, h.signInURL(r, request.SafeRedirect(r.URL.RequestURI())), http.StatusSeeOther)
		return nil
	}
	return h.Answer(w, r, sessionExpired())
}

// unsentResponseHeaders are the headers that describe a response, which a
// site may have set before its session ended and its response was dropped;
// the ones set before the gate (Server, Alt-Svc, the site's header
// directive) stay, as the next request gets them too.
var unsentResponseHeaders = []string{
	"Content-Type", "Content-Length", "Content-Encoding", "Content-Range", "Content-Disposition",
	"Content-Language", "Content-Location", "Transfer-Encoding", "Trailer", "Etag", "Last-Modified",
	"Accept-Ranges", "Location", "Set-Cookie", "Cache-Control", "Expires", "Vary",
}

// sendToLogin redirects a browser without a live session to the login page,
// dropping a stale cookie on the way.
func (h *responder) sendToLogin(w http.ResponseWriter, r *http.Request) error {
	if problem := h.portalProblem(r); problem != "" {
		return h.misconfigured(w, r, problem)
	}
	w.Header().Set("Cache-Control", "no-store")
	if _, hadCookie := h.token(r); hadCookie {
		h.dropCookie(w, r)
	}
	http.Redirect(w, r, h.signInURL(r, request.SafeRedirect(r.URL.RequestURI())), http.StatusSeeOther)
	return nil
}
