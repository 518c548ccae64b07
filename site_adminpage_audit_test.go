package pgsession

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// The admin page's actions in the audit trail, and the trail on the page:
// who did what to whom, from where, newest first, a page at a time.

// auditRows are the trail's entries on a page of it, one "actor action
// target detail outcome" line each, newest first.
func auditRows(page string) []string {
	var rows []string
	body := page[strings.Index(page, "<tbody>")+1:]
	for _, m := range regexp.MustCompile(`(?s)<tr>\s*<th scope="row">.*?</th>\s*<td>(.*?)</td>\s*<td><code>(.*?)</code></td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>`).FindAllStringSubmatch(body, -1) {
		outcome := regexp.MustCompile(`<[^>]+>`).ReplaceAllString(m[5], "")
		rows = append(rows, strings.Join([]string{m[1], m[2], m[3], m[4], outcome}, " | "))
	}
	return rows
}

func TestAdminPageActionsAreInTheAuditTrail(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	_, err := s.db.store.CreateGroup(t.Context(), "staff")
	require.NoError(t, err)

	s.post("/admin/users", url.Values{"username": {"bob"}, "password": {"bob's secret words"}, "is_admin": {"on"}})
	s.post("/admin/users", url.Values{"username": {"carol"}, "password": {"short"}})
	s.post("/admin/users/alice/admin", url.Values{"admin": {"on"}})
	s.post("/admin/users/alice/password", url.Values{"password": {"alice's new secret"}})
	s.post("/admin/users/alice/groups/join", url.Values{"group": {"staff"}})
	s.post("/admin/users/bob/delete", nil)
	s.post("/admin/users/bob/delete", url.Values{"confirm": {"yes"}})
	// A form from another site is refused before anything, and says
	// nothing of anyone: the trail does not keep it.
	s.admin.do(formFrom(t, s.site.url("/admin/users/alice/delete"), url.Values{"confirm": {"yes"}},
		"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"))

	page := s.admin.getPage(s.site.url("/admin/audit"))
	require.Equal(t, http.StatusOK, page.StatusCode)
	assert.Contains(t, mainOf(page.body), `<a href="/admin/audit" aria-current="page">Audit trail</a>`)
	assert.Equal(t, []string{
		"root | user.delete | bob |  | done (303)",
		"root | user.delete | bob | confirmation asked, nothing done | done (200)",
		"root | group.join | alice → staff |  | done (303)",
		"root | user.change | alice | password | done (303)",
		"root | user.change | alice | is_admin=true | done (303)",
		"root | user.create | carol |  | refused (400)",
		"root | user.create | bob | is_admin=true | done (303)",
	}, auditRows(page.body))
	assert.Contains(t, mainOf(page.body), "<td>127.0.0.1</td>", "from where")
	for _, secret := range []string{"bob's secret words", "alice's new secret", "short"} {
		assert.NotContains(t, page.body, secret, "no password is in the trail")
	}

	filtered := s.admin.getPage(s.site.url("/admin/audit?actor=root&target=alice"))
	assert.Equal(t, []string{
		"root | user.change | alice | password | done (303)",
		"root | user.change | alice | is_admin=true | done (303)",
	}, auditRows(filtered.body))
	assert.Contains(t, mainOf(filtered.body), `value="alice"`, "the filter stays in its field")

	// A user who is no admin is refused, and the trail says who tried.
	s.db.addUser(t, "mallory", "mallory's password")
	mallory := newBrowser(t)
	mallory.login(s.site, "mallory", "mallory's password")
	mallory.submit(s.site, "/admin/users/alice/delete", url.Values{"confirm": {"yes"}}, "/admin")
	rows := auditRows(s.admin.getPage(s.site.url("/admin/audit?actor=mallory")).body)
	assert.Equal(t, []string{"mallory | denied | alice | user.delete | refused (403)"}, rows)
}

func TestAdminPageAuditTrailIsPaged(t *testing.T) {
	t.Parallel()
	s := startAdminPageSite(t, "")
	for i := range 60 {
		require.NoError(t, s.db.store.RecordAudit(t.Context(), store.AuditEntry{Actor: "command line", Action: "user.create",
			Target: fmt.Sprintf("user%02d", i)}))
	}
	first := s.admin.getPage(s.site.url("/admin/audit"))
	rows := auditRows(first.body)
	require.Len(t, rows, 50)
	assert.Equal(t, "command line | user.create | user59 |  | done", rows[0], "newest first")
	older := regexp.MustCompile(`<a href="([^"]+)">Older actions</a>`).FindStringSubmatch(first.body)
	require.NotNil(t, older, "a link to the older ones")
	second := s.admin.getPage(s.site.url(strings.ReplaceAll(older[1], "&amp;", "&")))
	rows = auditRows(second.body)
	require.Len(t, rows, 10)
	assert.Equal(t, "command line | user.create | user09 |  | done", rows[0])
	assert.Equal(t, "command line | user.create | user00 |  | done", rows[9])
	assert.NotContains(t, second.body, "Older actions", "the last page")
	assert.Contains(t, mainOf(second.body), `<a href="/admin/audit">Newest</a>`)

	bad := s.admin.getPage(s.site.url("/admin/audit?before=yesterday"))
	assert.Equal(t, http.StatusBadRequest, bad.StatusCode)
	assert.Contains(t, mainOf(bad.body), "start from the newest")
}
