package pgsession

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// The audit trail read back, kept for its retention, and whole under load.

// auditPage is one answer of GET /api/auth/admin/audit.
type auditPage struct {
	Entries []store.AuditEntry `json:"entries"`
	Next    string             `json:"next"`
}

func getAuditPage(t *testing.T, c *testSite, query string) auditPage {
	t.Helper()
	resp := sendRaw(t, http.MethodGet, c.url("/api/auth/admin/audit?"+query), "", "X-Admin-Token", auditAdminToken)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	return webtest.Decode[auditPage](t, resp.body)
}

// The API lists the trail newest first, a page at a time: next is the
// before of the page that follows, "" after the last; its filters keep
// the entries with exactly their value, and a bad limit is a 400.
func TestTheAuditTrailPagesThroughTheAPI(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	c := startSite(t, siteOptions{db: db.url, handler: `admin_token "` + auditAdminToken + `"`})
	for i := range 5 {
		resp := sendRaw(t, http.MethodPost, c.url("/api/auth/admin/groups"), fmt.Sprintf(`{"name":"g%d"}`, i),
			"X-Admin-Token", auditAdminToken, "Content-Type", "application/json")
		require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	}
	db.auditTrail(t, 5)

	var targets []string
	query := "limit=2"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3, "five entries, two a page")
		page := getAuditPage(t, c, query)
		for _, e := range page.Entries {
			targets = append(targets, e.Target)
		}
		if page.Next == "" {
			break
		}
		query = "limit=2&before=" + page.Next
	}
	assert.Equal(t, []string{"g4", "g3", "g2", "g1", "g0"}, targets, "every entry once, newest first")

	page := getAuditPage(t, c, "target=g1&action=group.create&actor=admin+token")
	require.Len(t, page.Entries, 1)
	assert.Equal(t, "g1", page.Entries[0].Target)
	assert.Empty(t, page.Next)
	assert.Empty(t, getAuditPage(t, c, "actor=root").Entries)
	assert.Equal(t, `{"entries":[],"next":""}`, strings.TrimSpace(sendRaw(t, http.MethodGet,
		c.url("/api/auth/admin/audit?action=none"), "", "X-Admin-Token", auditAdminToken).body), "[] for none, never null")

	for _, q := range []string{"limit=0", "limit=501", "limit=x", "before=0", "before=-3"} {
		resp := sendRaw(t, http.MethodGet, c.url("/api/auth/admin/audit?"+q), "", "X-Admin-Token", auditAdminToken)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, q)
	}
	assert.Equal(t, http.StatusUnauthorized, sendRaw(t, http.MethodGet, c.url("/api/auth/admin/audit"), "").StatusCode)
	assert.Len(t, db.auditTrail(t, 5), 5, "reading the trail is no action")
}

// Fifty admin actions sent at once, by as many clients, are each recorded
// exactly once, with the status each was answered with.
func TestParallelAdminActionsAreEachRecordedOnce(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: `admin_token "` + auditAdminToken + `"`})
	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Half create groups; the other half put alice in the group the
			// request before creates, which may or may not exist by then.
			path, method, body := "/api/auth/admin/groups", http.MethodPost, fmt.Sprintf(`{"name":"p%d"}`, i)
			if i%2 == 1 {
				path, method, body = fmt.Sprintf("/api/auth/admin/users/alice/groups/p%d", i-1), http.MethodPut, ""
			}
			resp := sendRaw(t, method, c.url(path), body, "X-Admin-Token", auditAdminToken, "Content-Type", "application/json")
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()

	entries := db.auditTrail(t, n)
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.Action+" "+e.Target]++
		var i int
		if e.Action == "group.create" {
			_, err := fmt.Sscanf(e.Target, "p%d", &i)
			require.NoError(t, err)
		} else {
			_, err := fmt.Sscanf(e.Target, "alice → p%d", &i)
			require.NoError(t, err, e.Target)
			assert.Equal(t, "group.join", e.Action)
			i++ // the join of group p(i) is request i+1
			assert.Contains(t, []int{200, 404}, e.Status)
		}
		assert.Equal(t, statuses[i], e.Status, "%s: the status its client got", e.Target)
	}
	assert.Len(t, seen, n, "each action once")
}

// The cleanup job deletes admin actions older than audit_retention, says
// how many in its log line and its metric, and keeps the rest; with
// audit_retention 0 it keeps them all.
func TestOldAdminActionsAreDeletedByTheCleanup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		option string
		left   int
	}{{"audit_retention 30d", 1}, {"audit_retention 0", 2}} {
		t.Run(tc.option, func(t *testing.T) {
			t.Parallel()
			db := newTestDB(t)
			for _, target := range []string{"old", "new"} {
				require.NoError(t, db.store.RecordAudit(t.Context(), store.AuditEntry{Actor: "root", Action: "user.delete", Target: target}))
			}
			db.exec(t, `UPDATE pgsession.audit_log SET at = now() - interval '31 days' WHERE target = 'old'`)
			db.exec(t, `UPDATE pgsession.audit_log SET at = now() - interval '29 days' WHERE target = 'new'`)
			c := startSite(t, siteOptions{db: db.url, app: tc.option + "\ncleanup_interval 1s"})

			deleted := float64(2 - tc.left)
			require.Eventually(t, func() bool {
				for _, e := range c.logEntries(t) {
					if e["msg"] == "deleted expired sessions" && e["audit_entries_deleted"] == deleted {
						return true
					}
				}
				return false
			}, 30*time.Second, 50*time.Millisecond, "the cleanup logs the count:\n%s", c.logs())
			assert.Equal(t, tc.left, db.count(t, `SELECT count(*) FROM pgsession.audit_log`))
			assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.audit_log WHERE target = 'new'`))
			assert.Equal(t, deleted, c.metric(t, "cleanup_deleted_total", "kind", "audit_entries"))
		})
	}
}

// An action through Caddy's admin endpoint is recorded as the endpoint's,
// from the address of its connection.
func TestAdminEndpointActionsAreRecorded(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	s := startSite(t, siteOptions{db: db.url})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodDelete, adminAPIPrefix+"users/alice", nil)
	req.RemoteAddr = "127.0.0.1:40123"
	require.NoError(t, s.app.serveAdminAPI(rec, req))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	entries := db.auditTrail(t, 1)
	assert.Equal(t, entryOf{"", "caddy admin endpoint", "user.delete", "alice", "127.0.0.1", 200}, summary(entries[0]))
}
