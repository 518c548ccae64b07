package pgsession

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The admin.api.pg_session module serves every admin route of a site, as
// the routes package has them: one added later is there with nothing to
// do. Caddy's admin endpoint itself is in integration/adminapi_test.go.

func TestAdminAPIServesEveryAdminRoute(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{db: newTestDB(t).url})
	site, err := s.app.adminSite()
	require.NoError(t, err)
	param := regexp.MustCompile(`\{[a-z]+\}`)
	var served int
	for _, route := range site.Routes() {
		method, path, _ := strings.Cut(route, " ")
		rest, ok := strings.CutPrefix(path, DefaultAPIPath+"/admin/")
		if !ok {
			continue
		}
		t.Run(route, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(method, adminAPIPrefix+param.ReplaceAllString(rest, "nobody"), strings.NewReader("{}"))
			require.NoError(t, s.app.serveAdminAPI(rec, req), "answered by the route itself")
			assert.NotEqual(t, http.StatusInternalServerError, rec.Code, rec.Body.String())
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		})
		served++
	}
	assert.GreaterOrEqual(t, served, 14, "the admin routes of today, at least")

	for _, path := range []string{"", "me", "..%2Fme", "users/nobody/nothing"} {
		err := s.app.serveAdminAPI(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, adminAPIPrefix+path, nil))
		var apiErr caddy.APIError
		require.True(t, errors.As(err, &apiErr), "%q: %v", path, err)
		assert.Equal(t, http.StatusNotFound, apiErr.HTTPStatus, path)
		assert.Contains(t, apiErr.Message, "no pg_session admin route", path)
	}
}

// An invitation made through Caddy's admin endpoint, whose Host is no
// site's, links to the login page it names, and is refused without one.
func TestAdminAPIInvitationLinksToTheSiteItNames(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{db: newTestDB(t).url})
	post := func(body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, adminAPIPrefix+"invitations", strings.NewReader(body))
		req.Host = "localhost:2019"
		require.NoError(t, s.app.serveAdminAPI(rec, req))
		return rec
	}
	rec := post(`{}`)
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Contains(t, rec.Body.String(), "login_url")
	rec = post(`{"login_url":"ftp://example.com/login"}`)
	assert.Equal(t, http.StatusBadRequest, rec.Code)

	rec = post(`{"login_url":"https://example.com/login"}`)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	var out struct{ URL string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	assert.True(t, strings.HasPrefix(out.URL, "https://example.com/login/invitation?token="), out.URL)
}
