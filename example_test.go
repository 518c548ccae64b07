package pgsession

import (
	"cmp"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// examplePath is the commented example the README points newcomers to;
// exampleGolden is the JSON it adapts to.
const (
	examplePath   = "Caddyfile.example"
	exampleGolden = "testdata/caddyfile_example.json"
)

// Caddyfile.example adapts, to the JSON pinned in exampleGolden, so an
// option renamed or a rule tightened cannot leave it broken; -update
// rewrites the JSON.
func TestCaddyfileExampleAdapts(t *testing.T) {
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	input := strings.ReplaceAll(string(raw), "\r\n", "\n")
	if *updateGolden {
		if err := os.WriteFile(exampleGolden, []byte(adaptJSON(t, input)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	expected, err := os.ReadFile(exampleGolden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestCaddyfileExampleAdapts -update to write it)", err)
	}
	// file_server hides the Caddyfile by its OS-specific path, as in the golden files.
	quoted, _ := json.Marshal("." + string(filepath.Separator) + goldenFilename)
	want := strings.ReplaceAll(strings.TrimSpace(string(expected)), `"./Caddyfile"`, string(quoted))
	if !caddytest.CompareAdapt(t, examplePath, input, "caddyfile", want) {
		t.Errorf("%s no longer adapts to %s (see above; - expected, + actual)", examplePath, exampleGolden)
	}
}

// Caddyfile.example shows every option of the global option, set or
// commented out, so a newcomer learns each from the file they copy. The
// options come from the app's JSON names, so a new one fails here until
// the example explains it.
func TestCaddyfileExampleNamesEveryGlobalOption(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	app := reflect.TypeFor[App]()
	var options []string
	for i := range app.NumField() {
		if name, _, _ := strings.Cut(app.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			options = append(options, name)
		}
	}
	if len(options) == 0 {
		t.Fatal("found no JSON options on App")
	}
	// A list in JSON is a block repeated in the Caddyfile, under its singular name.
	caddyfileName := map[string]string{"identity_providers": "identity_provider"}
	for _, option := range options {
		option = cmp.Or(caddyfileName[option], option)
		// A line of its own, as set or as a commented-out example: "\tcache_size 10000" or "\t# cache_size 10000".
		if !regexp.MustCompile(`(?m)^\s*(# )?` + regexp.QuoteMeta(option) + ` \S`).Match(raw) {
			t.Errorf("%s does not show the global option's %s (set, or commented out)", examplePath, option)
		}
	}
}
