package routes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/pgsession/caddy-pgsession/store"
)

// The audit trail of admin actions. Every admin route other than a GET is
// wrapped when it is registered (router.addAction), so whoever serves the
// route (the site's router or Caddy's admin endpoint) records it the same
// way: after the handler, with the status it was answered with, and never
// instead of it.

// recordTimeout bounds the write of one entry: the action is done, and its
// answer waits for the record.
const recordTimeout = 5 * time.Second

// Denied attempts are recorded at most deniedRate a second, in bursts of
// deniedBurst: anyone can send a wrong admin token as fast as the network
// carries it, and an unbounded record of them would let a stranger fill
// the table and the log. What the limit drops is counted, and the next
// entry written says how many.
const (
	deniedRate  = 1
	deniedBurst = 30
)

// ActionDenied is the action of an admin request refused before its
// handler: a wrong admin token, or a session or API token of a user who is
// no admin. The detail names the route that was attempted.
const ActionDenied = "denied"

// auditTrail records the admin actions of one site.
type auditTrail struct {
	store   *store.Store
	logger  *zap.Logger
	denials *rate.Limiter
	dropped chan int64 // holds the count of denials the limit dropped since the last one written
}

func newAuditTrail(s *store.Store, logger *zap.Logger) *auditTrail {
	t := &auditTrail{store: s, logger: logger, denials: rate.NewLimiter(deniedRate, deniedBurst), dropped: make(chan int64, 1)}
	t.dropped <- 0
	return t
}

// auditNote is what a handler adds to the entry of its request.
type auditNote struct {
	target string   // replaces the target the path names (a new user's name)
	detail []string // joined with ", "
}

// auditDetail adds to the entry of the request what it changed, in words
// ("is_admin=true", "password"): never a password, a token or a link. On
// a route that is not recorded it does nothing.
func (c *caller) auditDetail(format string, args ...any) {
	if c.audit != nil {
		c.audit.detail = append(c.audit.detail, fmt.Sprintf(format, args...))
	}
}

// auditTarget names what the action was done to, where the path does not
// (POST /admin/users names the new user in its body).
func (c *caller) auditTarget(target string) {
	if c.audit != nil {
		c.audit.target = target
	}
}

// actor is who acted, as the trail names them: the way the request came
// in when that says it (Caddy's admin endpoint), the admin token, or the
// admin's session or API token.
func (c *caller) actor() (store.UserID, string) {
	switch {
	case c.via != "":
		return "", c.via
	case c.admin:
		return "", store.ActorAdminToken
	case c.session != nil:
		return c.session.User.ID, c.session.User.Username
	}
	return c.deniedID, c.deniedName
}

// recorded is serve, recorded under action after it is served.
func (rt *router) recorded(action string, serve func(http.ResponseWriter, *http.Request, *caller) error) func(http.ResponseWriter, *http.Request, *caller) error {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		c.audit = &auditNote{}
		sw := &statusWriter{ResponseWriter: w}
		err := serve(sw, r, c)
		if rt.audit != nil {
			id, actor := c.actor()
			rt.audit.record(r, store.AuditEntry{ActorID: id, Actor: actor, Action: action,
				Target: cmp.Or(c.audit.target, pathTarget(r)), Detail: strings.Join(c.audit.detail, ", "), Status: sw.statusOf(err)})
		}
		return err
	}
}

// denied records an admin request that err refused before its handler ran,
// when it was refused for who made it: a wrong admin token, or a user who
// is no admin. Requests with no credential at all, from another origin or
// with a wrong method say nothing of anyone, and are left to the metrics.
func (rt *router) denied(r *http.Request, rte *route, c *caller, err error) {
	var ref *Refusal
	if rt.audit == nil || rte.action == "" || c.audit != nil || !errors.As(err, &ref) {
		return
	}
	switch ref.reason {
	case ReasonInvalidAdminToken, ReasonNotAdmin, ReasonAdminScopeNeedsAdmin, ReasonForbidden:
	default:
		return
	}
	dropped := <-rt.audit.dropped
	if !rt.audit.denials.Allow() {
		rt.audit.dropped <- dropped + 1
		return
	}
	rt.audit.dropped <- 0
	id, actor := c.actor()
	if ref.reason == ReasonInvalidAdminToken {
		actor = "invalid admin token"
	}
	detail := rte.action
	if dropped > 0 {
		detail += fmt.Sprintf(" (%d more denied requests since the last one recorded were not)", dropped)
	}
	rt.audit.logger.Warn("admin request denied", zap.String("action", rte.action), zap.String("actor", actor),
		zap.String("remote", clientIP(r)), zap.String("reason", string(ref.reason)), zap.Int64("not_recorded_before", dropped))
	rt.audit.record(r, store.AuditEntry{ActorID: id, Actor: actor, Action: ActionDenied, Target: pathTarget(r),
		Detail: detail, Status: ref.status})
}

// record writes e with the request's address. A failed write is logged and
// goes no further: the action happened, and its answer stands.
func (t *auditTrail) record(r *http.Request, e store.AuditEntry) {
	if t.store == nil {
		return // a site built without a store, in the routes' own tests
	}
	e.Remote = clientIP(r)
	if host, _, err := net.SplitHostPort(e.Remote); err == nil {
		e.Remote = host // Caddy's admin endpoint has no client address but the connection's
	}
	// The client may be gone by now; the record is written all the same.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), recordTimeout)
	defer cancel()
	if err := t.store.RecordAudit(ctx, e); err != nil {
		t.logger.Error("admin action not recorded in the audit trail", zap.String("action", e.Action),
			zap.String("actor", e.Actor), zap.String("target", e.Target), zap.Int("status", e.Status), zap.Error(err))
	}
}

// pathTarget is what the path of an admin route names: a user, a group, a
// user's membership of a group ("alice → editors"), or a session or other
// thing by its id.
func pathTarget(r *http.Request) string {
	user, group := r.PathValue("username"), r.PathValue("group")
	switch {
	case user != "" && group != "":
		return user + " → " + group
	case user != "":
		return user
	case group != "":
		return group
	}
	return r.PathValue("id")
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusOf is the status of the answer: what the handler wrote, or else
// what Answer will write for the error it returned.
func (w *statusWriter) statusOf(err error) int {
	var ref *Refusal
	switch {
	case w.status != 0:
		return w.status
	case err == nil:
		return http.StatusOK
	case errors.As(err, &ref):
		return ref.status
	}
	return http.StatusInternalServerError
}

// Bounds of a page of GET {api}/admin/audit.
const (
	defaultAuditPage = store.DefaultAuditLimit
	maxAuditPage     = 500
)

// serveAdminAudit lists the audit trail newest first, a page at a time:
// next is the before of the next page, "" after the last.
func (h *adminRoutes) serveAdminAudit(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	limit, before := defaultAuditPage, int64(0)
	var err error
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxAuditPage {
			return refuse(ReasonBadRequest, fmt.Sprintf("limit must be a number from 1 to %d", maxAuditPage))
		}
	}
	if v := q.Get("before"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			return refuse(ReasonBadRequest, "before must be the next of an earlier page, a positive number")
		}
	}
	// One entry more than the page tells whether another page follows.
	entries, err := h.store.AuditLog(r.Context(), store.AuditQuery{Limit: limit + 1, Before: before,
		Actor: q.Get("actor"), Target: q.Get("target"), Action: q.Get("action")})
	if err != nil {
		return storeUnavailable(err)
	}
	next := ""
	if len(entries) > limit {
		entries = entries[:limit]
		next = strconv.FormatInt(entries[limit-1].ID, 10)
	}
	if entries == nil {
		entries = []store.AuditEntry{} // [], not null, for a script
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries, "next": next})
	return nil
}
