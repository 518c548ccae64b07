package pgsession

import (
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The fuzz target of this package; the pure helpers' targets are in
// internal/request. Its checked-in corpus in testdata/fuzz/<name> runs as
// an ordinary test; make fuzz-short (part of make test) fuzzes it briefly
// and make fuzz for longer. A failing input found while fuzzing is written
// there too and becomes a regression test.

// errAt is how every error of the Caddyfile blocks ends: the file and line
// (NewTestDispenser's file is "Testfile"; no imports, so no import chain).
var errAt = regexp.MustCompile(`at Testfile:(\d+)$`)

// FuzzUnmarshalCaddyfile feeds arbitrary text as the body of a pg_session
// block, both the handler directive and the global option (the app). It
// never panics; an error names the file and a line of the input; and what
// the parser accepts (its rules are Validate's) provisions without error and
// survives the trip through JSON that caddy adapt makes. The oracle does not
// repeat the rules: a rule dropped from Validate shows as a provisioning
// that fails or a handler that misbehaves, not as a copy that agrees.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"",
		"public /assets/* /favicon.ico\ncookie_name __Host-session\nsecure on\nsame_site none",
		"same_site none",
		"lifetime 0",
		"remember_lifetime 0\nidle_timeout 30m\nrenewal_interval 1m",
		"renewal_interval 5m\nidle_timeout 1m",
		"cache_control off\nmax_registrations_per_ip 3\nerror_pages caddy",
		"login_path login",
		"trusted_origins https://app.example.com http://x/y",
		"admin_token {env.ADMIN_TOKEN}\ncross_origin_protection off",
		"database_url {env.DATABASE_URL}\nschema pgsession\ncleanup_interval 1h\nmax_connections 8",
		"database_url postgres://u:p@db/app\nlisten_database_url postgres://db/app\ncache_size 0\noffline_grace 0",
		"identity_provider google {\nissuer https://accounts.google.com\nclient_id a\nclient_secret {env.X}\nallow_domains example.com\nauto_create on\n}",
		"identity_provider github {\ngithub\nclient_id a\nclient_secret b\nallow_organizations org/team\n}\nidentity_provider github {\n}",
		"public {\n}",
		"}\n{",
	} {
		f.Add(seed)
	}
	app := fuzzApp(f)
	f.Fuzz(func(t *testing.T, input string) {
		text := "pg_session {\n" + input + "\n}"
		lines := strings.Count(text, "\n") + 1

		d, ok := testDispenser(text)
		if !ok {
			return
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(d); err != nil {
			checkErrAt(t, "handler", text, lines, err)
		} else {
			var back Handler
			roundTrip(t, text, &h, &back)
			checkProvisions(t, text, &back, app)
		}

		d, _ = testDispenser(text)
		var a App
		if err := a.UnmarshalCaddyfile(d); err != nil {
			checkErrAt(t, "app", text, lines, err)
		} else {
			var back App
			roundTrip(t, text, &a, &back)
			checkAppProvisions(t, text, &back)
		}
	})
}

// fuzzApp is an app to provision handlers on: never started, so it needs
// no database.
func fuzzApp(f *testing.F) *App {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	f.Cleanup(cancel)
	app := &App{DatabaseURL: "postgres://127.0.0.1:1/fuzz"}
	if err := app.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { app.Cleanup() })
	return app
}

// checkProvisions provisions and validates a handler the parser accepted.
// A login template names a file, which the fuzzer cannot provide, and a
// placeholder in the admin token depends on the environment.
func checkProvisions(t *testing.T, text string, h *Handler, app *App) {
	t.Helper()
	if h.LoginTemplate != "" || strings.Contains(h.AdminToken, "{") {
		return
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.provision(ctx, app); err != nil {
		t.Fatalf("%q: parsed, but does not provision: %v", text, err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("%q: parsed, but provisioned it does not validate: %v", text, err)
	}
	if !validCookieName(h.CookieName) || h.Lifetime <= 0 || h.RenewalInterval <= 0 || !strings.HasPrefix(h.APIPath, "/") {
		t.Fatalf("%q: provisioned as %+v", text, h)
	}
}

// checkAppProvisions provisions an app the parser accepted, when its
// connection strings hold no placeholder, which depends on the environment.
func checkAppProvisions(t *testing.T, text string, a *App) {
	t.Helper()
	if a.DatabaseURL == "" || strings.Contains(a.DatabaseURL+a.ListenDatabaseURL, "{") {
		return
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := a.Provision(ctx); err != nil {
		t.Fatalf("%q: parsed, but does not provision: %v", text, err)
	}
	defer a.Cleanup()
	if err := a.Validate(); err != nil {
		t.Fatalf("%q: parsed, but provisioned it does not validate: %v", text, err)
	}
}

// testDispenser returns caddyfile.NewTestDispenser(text), unless that would
// end the process: NewTestDispenser calls log.Fatalf on text the lexer
// refuses (an unclosed quote or heredoc), which is Caddy's test helper and
// not the parsing under test, so such text is skipped. Text with {$ is
// lexed as is, without NewTestDispenser's expansion of environment
// variables, since it cannot be known in advance whether the expanded text
// would lex.
func testDispenser(text string) (*caddyfile.Dispenser, bool) {
	tokens, err := caddyfile.Tokenize([]byte(text), "Testfile")
	if err != nil {
		return nil, false
	}
	if strings.Contains(text, "{$") {
		return caddyfile.NewDispenser(tokens), true
	}
	return caddyfile.NewTestDispenser(text), true
}

func checkErrAt(t *testing.T, block, text string, lines int, err error) {
	t.Helper()
	m := errAt.FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("%q: %s error without file and line: %v", text, block, err)
	}
	if n, _ := strconv.Atoi(m[1]); n < 1 || n > lines {
		t.Fatalf("%q: %s error at line %d of %d: %v", text, block, n, lines, err)
	}
}

// roundTrip checks that v comes back equal from the JSON caddy adapt makes of it.
func roundTrip[T any](t *testing.T, text string, v, back *T) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%q: accepted, but does not marshal: %v", text, err)
	}
	if err := json.Unmarshal(data, back); err != nil {
		t.Fatalf("%q: accepted as %s, which does not unmarshal: %v", text, data, err)
	}
	if !reflect.DeepEqual(v, back) {
		t.Fatalf("%q: accepted as %+v, but through JSON %s it comes back as %+v", text, *v, data, *back)
	}
}
