package pgsession

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The packages are layers, and imports point one way: cmd/caddy uses the
// root, the root (Caddy's glue) uses the rest, the routes use the engine and
// the layers below it and of Caddy only its request-time values (the
// replacer, caddyhttp.Error), and the session engine, the sealing, the
// identity providers' client, the store and the migrations know nothing of
// Caddy or of the layers above them.
func TestPackagesImportOneWay(t *testing.T) {
	t.Parallel()
	const module = "github.com/pgsession/caddy-pgsession"
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	require.NoError(t, err)
	imports := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		imports[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p.Imports
	}
	require.Contains(t, imports, "internal/engine")

	for pkg, deps := range imports {
		for _, dep := range deps {
			if dep == module {
				assert.Equal(t, "cmd/caddy", pkg, "only the development binary imports the root package")
			}
		}
	}
	// What each lower layer may import of the module; none imports Caddy.
	lower := map[string][]string{
		"internal/engine":  {"store"},
		"internal/sealed":  nil,
		"internal/request": nil,
		// The identity providers' client: OAuth 2 and OpenID Connect, no Caddy, no store.
		"internal/identity": nil,
		"store":             {"migrations", "internal/sealed"},
		"migrations":        nil,
		"web":               nil,
		// The test providers know nothing of the plugin, so its tests meet
		// a provider that was not written to fit it.
		"internal/oidctest":          {"internal/caddyproc", "internal/oidctest/control"},
		"internal/oidctest/provider": {"internal/oidctest/control"},
		"internal/oidctest/control":  nil,
		"internal/smtptest":          {"internal/caddyproc", "internal/smtptest/control"},
		"internal/smtptest/server":   {"internal/smtptest/control"},
		"internal/smtptest/control":  nil,
		// The mail sender knows SMTP, not the plugin: the app hands it its options.
		"internal/mail": nil,
	}
	for _, dep := range imports["internal/routes"] {
		if own, ok := strings.CutPrefix(dep, module+"/"); ok {
			assert.True(t, slices.Contains([]string{"internal/engine", "internal/access", "internal/sealed", "internal/request", "internal/identity", "store", "web"}, own),
				"internal/routes imports %s, above or beside it", own)
		}
		if strings.HasPrefix(dep, "github.com/caddyserver/") {
			assert.Contains(t, []string{"github.com/caddyserver/caddy/v2", "github.com/caddyserver/caddy/v2/modules/caddyhttp"}, dep,
				"internal/routes is no Caddy module: it uses only the values a request carries")
		}
	}
	// The access rules read Caddy's path matcher and Caddyfile dispenser,
	// so the syntax is Caddy's own, and nothing of the module.
	for _, dep := range imports["internal/access"] {
		assert.False(t, strings.HasPrefix(dep, module), "internal/access imports %s", dep)
		if strings.HasPrefix(dep, "github.com/caddyserver/") {
			assert.Contains(t, []string{"github.com/caddyserver/caddy/v2", "github.com/caddyserver/caddy/v2/modules/caddyhttp",
				"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"}, dep, "internal/access uses the matcher and the dispenser only")
		}
	}
	for pkg, allowed := range lower {
		for _, dep := range imports[pkg] {
			assert.False(t, strings.HasPrefix(dep, "github.com/caddyserver/"), "%s imports %s", pkg, dep)
			if own, ok := strings.CutPrefix(dep, module+"/"); ok {
				assert.True(t, slices.Contains(allowed, own), "%s imports %s, above or beside it", pkg, own)
			}
		}
	}
}

// No Go file of the project is longer than a newcomer reads in one go.
func TestNoGoFileIsOver450Lines(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("git", "ls-files", "*.go").Output()
	require.NoError(t, err)
	for file := range strings.FieldsSeq(string(out)) {
		data, err := os.ReadFile(file)
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		require.NoError(t, err)
		assert.LessOrEqual(t, strings.Count(string(data), "\n"), 450, "%s", file)
	}
}
