package pgsession

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidCookieName(t *testing.T) {
	for name, ok := range map[string]bool{
		"session": true, "__Host-session": true, "my_app.sid": true,
		"": false, "a b": false, "a;b": false, "a=b": false, "sé": false,
	} {
		assert.Equal(t, ok, validCookieName(name), "%q", name)
	}
}

// The pages link to home, so it must stay on the site, as the redirect
// after login must; site_name is one line of text.
func TestHomeAndSiteNameRules(t *testing.T) {
	for _, tc := range []struct {
		h       Handler
		wantErr string // "" for a valid handler
	}{
		{Handler{Home: "/"}, ""},
		{Handler{Home: "/docs/?lang=en"}, ""},
		{Handler{SiteName: "Example Docs · Ünïcode"}, ""},
		{Handler{Home: "docs"}, `home must be a path on this site, such as / or /docs/, not "docs"`},
		{Handler{Home: "//evil.example/"}, `not "//evil.example/"`},
		{Handler{Home: `/\evil.example`}, `not "/\\evil.example"`},
		{Handler{Home: "https://evil.example/"}, `not "https://evil.example/"`},
		{Handler{Home: "/\t/evil.example"}, `not "/\t/evil.example"`},
		{Handler{SiteName: "Example\nDocs"}, "site_name must be one line of text"},
	} {
		err := tc.h.Validate()
		if tc.wantErr == "" {
			assert.NoError(t, err, "%+v", tc.h)
			continue
		}
		if assert.Error(t, err, "%+v", tc.h) {
			assert.Contains(t, err.Error(), tc.wantErr)
		}
	}
}

// The JSON routes need a prefix of their own: at the root they would take
// over the site's paths (found by FuzzUnmarshalCaddyfile).
func TestAPIPathIsBelowTheRoot(t *testing.T) {
	for path, ok := range map[string]bool{"/api/auth": true, "/api/": true, "/": false, "//": false} {
		err := (&Handler{APIPath: path}).Validate()
		if ok {
			assert.NoError(t, err, "%q", path)
		} else if assert.Error(t, err, "%q", path) {
			assert.Contains(t, err.Error(), "api_path must be a path below the root")
		}
	}
}
