package pgsession

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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

// The Caddyfile and JSON agree on the range of every count and duration
// option, and on what 0 means: where 0 has a meaning of its own (off,
// unlimited) both take it, and where it has none both refuse it, although
// in JSON a 0 would otherwise read as the option left out.
func TestCaddyfileAndJSONAgreeOnRanges(t *testing.T) {
	appOptions := new(App).options()
	for option, rule := range rangeRules {
		values := map[string]bool{"-1": false, "1": !rule.oneSecond, "0": rule.zero != ""} // Caddyfile text: valid
		jsonValues := map[string]string{"-1": "-1", "1": "1", "0": "0"}
		if rule.duration {
			values = map[string]bool{"-1h": false, "1h": true, "500ms": !rule.oneSecond, "0": rule.zero != "", "0s": rule.zero != ""}
			jsonValues = map[string]string{"-1h": `"-1h"`, "1h": `"1h"`, "500ms": `"500ms"`, "0": "0", "0s": `"0s"`}
		}
		_, ofApp := appOptions[option]
		for text, valid := range values {
			caddyfileErr, jsonErr := caddyfileAndJSON(t, ofApp, option, text, jsonValues[text])
			if valid {
				assert.NoError(t, caddyfileErr, "Caddyfile %s %s", option, text)
				assert.NoError(t, jsonErr, "JSON %s %s", option, jsonValues[text])
				continue
			}
			if assert.Error(t, caddyfileErr, "Caddyfile %s %s", option, text) && assert.Error(t, jsonErr, "JSON %s %s", option, jsonValues[text]) {
				assert.Equal(t, caddyfileErr.Error(), jsonErr.Error()+", at Testfile:2", "the same rule refuses %s %s", option, text)
			}
		}
	}
}

// caddyfileAndJSON sets option to text in a Caddyfile block and to
// jsonValue in JSON read as Caddy reads a module's, and returns what each
// says; the JSON is provisioned first, as Caddy does before Validate.
func caddyfileAndJSON(t *testing.T, ofApp bool, option, text, jsonValue string) (caddyfileErr, jsonErr error) {
	t.Helper()
	d := caddyfile.NewTestDispenser("pg_session {\n" + option + " " + text + "\n}")
	raw := []byte(`{"` + option + `": ` + jsonValue + `}`)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	app := &App{DatabaseURL: "postgres://127.0.0.1:1/ranges"}
	if ofApp {
		caddyfileErr = new(App).UnmarshalCaddyfile(d)
		if err := caddy.StrictUnmarshalJSON(raw, app); err != nil {
			return caddyfileErr, err
		}
	} else {
		caddyfileErr = new(Handler).UnmarshalCaddyfile(d)
	}
	if err := app.Provision(ctx); err != nil {
		return caddyfileErr, err
	}
	defer app.Cleanup()
	if ofApp {
		return caddyfileErr, app.Validate()
	}
	var h Handler
	if err := caddy.StrictUnmarshalJSON(raw, &h); err != nil {
		return caddyfileErr, err
	}
	if err := h.provision(ctx, app); err != nil {
		return caddyfileErr, err
	}
	return caddyfileErr, h.Validate()
}
