package routes

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// The audit trail on the admin page, {admin_path}/audit: the admin actions
// newest first, a page at a time (?before= the last one's number), found
// by who did them (?actor=) and to whom (?target=).

// adminPageAuditEntries is how many entries a page of the trail shows.
const adminPageAuditEntries = 50

func (h *adminPageRoutes) serveAudit(w http.ResponseWriter, r *http.Request, c *caller) error {
	q := r.URL.Query()
	page := web.AdminAuditPage{AdminFrame: h.frame(c, "Audit trail", "audit"), Actor: q.Get("actor"), Target: q.Get("target")}
	var before int64
	if v := q.Get("before"); v != "" {
		var err error
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			page.Error = "That page of the trail is not there: start from the newest."
			page.Newest = h.auditHref(page.Actor, page.Target, 0)
			return h.render(w, r, http.StatusBadRequest, web.AdminAuditTemplate(), page)
		}
		page.Newest = h.auditHref(page.Actor, page.Target, 0)
	}
	// One entry more than the page tells whether another page follows.
	entries, err := h.store.AuditLog(r.Context(), store.AuditQuery{Limit: adminPageAuditEntries + 1, Before: before,
		Actor: page.Actor, Target: page.Target})
	if err != nil {
		return storeUnavailable(err)
	}
	if len(entries) > adminPageAuditEntries {
		entries = entries[:adminPageAuditEntries]
		page.Older = h.auditHref(page.Actor, page.Target, entries[len(entries)-1].ID)
	}
	for _, e := range entries {
		page.Entries = append(page.Entries, web.AdminAuditEntry{At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target,
			Detail: e.Detail, Remote: e.Remote, Status: e.Status})
	}
	return h.render(w, r, http.StatusOK, web.AdminAuditTemplate(), page)
}

// auditHref is a page of the trail: its filters, and the entries before
// the one numbered before (0: the newest).
func (h *adminPageRoutes) auditHref(actor, target string, before int64) string {
	q := url.Values{}
	if actor != "" {
		q.Set("actor", actor)
	}
	if target != "" {
		q.Set("target", target)
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	if len(q) == 0 {
		return h.AdminPath + "/audit"
	}
	return h.AdminPath + "/audit?" + q.Encode()
}
