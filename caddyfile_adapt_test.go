package pgsession

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	// Importing caddytest starts nothing (only its Tester runs a server), and it adds only
	// the standard modules below, which the golden files need anyway.
	"github.com/caddyserver/caddy/v2/caddytest"

	// The golden files adapt with the modules of the binary we ship (cmd/caddy), so directives such
	// as file_server, reverse_proxy and basic_auth are known and ordered as users will see them.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/pgsession/caddy-pgsession/internal/identity"
	"github.com/pgsession/caddy-pgsession/internal/mail"
)

// updateGolden rewrites the expected part of each golden file with today's output, for a deliberate
// change of wording or JSON; review the result with git diff before committing it.
var updateGolden = flag.Bool("update", false, "rewrite the expected part of testdata/caddyfile_adapt/*.caddyfiletest")

// goldenDir holds the golden files, in the format of Caddy's
// caddytest/integration/caddyfile_adapt: a Caddyfile, a line of ten dashes, then the expected JSON,
// or for a file named *_error.caddyfiletest the expected adapt error.
const goldenDir = "testdata/caddyfile_adapt"

// goldenSeparator is Caddy's, so a file can be moved between the two suites unchanged.
const goldenSeparator = "----------"

// goldenFilename is the name the Caddyfile adapter gives the input in error messages
// (Caddyfile:N); it is also its default when no filename is passed, as in CompareAdapt.
const goldenFilename = "Caddyfile"

// goldenFile is one parsed .caddyfiletest file.
type goldenFile struct {
	path      string
	caddyfile string // as Caddy's runner passes it: trimmed, with one final newline
	expected  string // the JSON or the error text, trimmed
	wantError bool
}

func readGoldenFiles(t *testing.T) []goldenFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no golden files in %s", goldenDir)
	}
	var files []goldenFile
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Windows checkouts may turn newlines into CRLF; the adapter's output has LF.
		text := strings.ReplaceAll(string(data), "\r\n", "\n")
		input, expected, ok := strings.Cut(text, goldenSeparator)
		if !ok {
			t.Fatalf("%s: no %s line between the Caddyfile and the expected result", path, goldenSeparator)
		}
		files = append(files, goldenFile{
			path:      path,
			caddyfile: strings.TrimSpace(input) + "\n",
			expected:  strings.TrimSpace(expected),
			wantError: strings.HasSuffix(path, "_error.caddyfiletest"),
		})
	}
	return files
}

// TestCaddyfileAdapt adapts each golden Caddyfile and compares the JSON with Caddy's own
// caddytest.CompareAdapt, which prints a line diff (- expected, + actual) on a mismatch.
func TestCaddyfileAdapt(t *testing.T) {
	for _, f := range readGoldenFiles(t) {
		if f.wantError {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(f.path), ".caddyfiletest"), func(t *testing.T) {
			if *updateGolden {
				writeGolden(t, f, adaptJSON(t, f.caddyfile))
				return
			}
			if !strings.HasPrefix(f.expected, "{") {
				t.Fatalf("%s: the expected part is not JSON; a file expecting an error must be named *_error.caddyfiletest", f.path)
			}
			// file_server hides the Caddyfile by its OS-specific path, as in Caddy's runner.
			quoted, _ := json.Marshal("." + string(filepath.Separator) + goldenFilename)
			expected := strings.ReplaceAll(f.expected, `"./Caddyfile"`, string(quoted))
			if !caddytest.CompareAdapt(t, f.path, f.caddyfile, "caddyfile", expected) {
				t.Errorf("%s: adapting failed or the JSON differs from the expected part (see above; - expected, + actual)", f.path)
			}
			checkFormatted(t, f)
		})
	}
}

// TestCaddyfileAdaptError adapts each *_error golden Caddyfile and expects adapting to fail with
// exactly the expected text, which names the file and line so users can find their mistake.
func TestCaddyfileAdaptError(t *testing.T) {
	fileLine := regexp.MustCompile(`\b` + regexp.QuoteMeta(goldenFilename) + `:\d+\b`)
	for _, f := range readGoldenFiles(t) {
		if !f.wantError {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(f.path), ".caddyfiletest"), func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(f.caddyfile), map[string]any{"filename": goldenFilename})
			if err == nil {
				t.Fatalf("%s: adapting succeeded, want the error:\n  %s", f.path, f.expected)
			}
			got := strings.ReplaceAll(err.Error(), "\r\n", "\n")
			if bug, ok := knownBugs[filepath.Base(f.path)]; ok && got == bug.got {
				t.Skipf("known bug: %s\nwant: %s\n got: %s", bug.why, f.expected, got)
			}
			if *updateGolden {
				writeGolden(t, f, got)
				return
			}
			if got != f.expected {
				t.Errorf("%s: adapting failed with another error (rerun with -update to accept it)\nwant: %s\n got: %s", f.path, f.expected, got)
			}
			if !fileLine.MatchString(f.expected) {
				t.Errorf("%s: the expected error names no %s:<line>; an error users cannot locate is a bug", f.path, goldenFilename)
			}
			checkFormatted(t, f)
		})
	}
}

// knownBugs are error files whose expected text is what users should see while today's parser
// says something worse. Each is skipped only while the exact wrong text comes back, so the
// suite stays green, -update cannot enshrine the bug, and the file passes once the bug is fixed
// (then delete its entry here).
var knownBugs = map[string]struct{ got, why string }{}

// adaptJSON returns the adapted config indented as CompareAdapt compares it, for -update.
func adaptJSON(t *testing.T, input string) string {
	t.Helper()
	result, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, result, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return indented.String()
}

func writeGolden(t *testing.T, f goldenFile, expected string) {
	t.Helper()
	data := f.caddyfile + goldenSeparator + "\n" + expected + "\n"
	if err := os.WriteFile(f.path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkFormatted keeps the golden Caddyfiles as `caddy fmt` writes them, since they double as
// examples; the adapter only warns about this, and CompareAdapt only logs the warning.
func checkFormatted(t *testing.T, f goldenFile) {
	t.Helper()
	if formatted := string(caddyfile.Format([]byte(f.caddyfile))); formatted != f.caddyfile {
		t.Errorf("%s: the Caddyfile is not formatted; caddy fmt would write:\n%s", f.path, formatted)
	}
}

// TestGoldenCoversEveryOption fails for each option of the pg_session global option or directive
// that no golden file sets, so a new option cannot ship without a golden test. The options are
// read from the syntax blocks in the doc comments of the two UnmarshalCaddyfile methods, which
// README and users rely on, and checked against the options the parser's table reads.
func TestGoldenCoversEveryOption(t *testing.T) {
	documented := documentedOptions(t, "caddyfile.go")
	for _, receiver := range []string{"App", "Handler"} {
		if len(documented[receiver].doc) == 0 {
			t.Fatalf("caddyfile.go: found no options in the syntax block of (*%s).UnmarshalCaddyfile", receiver)
		}
		if missing := without(documented[receiver].parsed, documented[receiver].doc); len(missing) > 0 {
			t.Errorf("(*%s).UnmarshalCaddyfile parses %v, missing from the syntax block of its doc comment", receiver, missing)
		}
		if extra := without(documented[receiver].doc, documented[receiver].parsed); len(extra) > 0 {
			t.Errorf("(*%s).UnmarshalCaddyfile documents %v, which its table of options does not read", receiver, extra)
		}
	}

	// An option counts as covered only in a file that adapts, so its JSON is pinned too.
	covered := map[string]bool{}
	for _, f := range readGoldenFiles(t) {
		if f.wantError {
			continue
		}
		tokens, err := caddyfile.Tokenize([]byte(f.caddyfile), f.path)
		if err != nil {
			t.Fatalf("%s: %v", f.path, err)
		}
		for _, option := range pgSessionOptions(tokens) {
			covered[option] = true
		}
	}
	for _, receiver := range []string{"App", "Handler"} {
		for _, option := range documented[receiver].doc {
			if !covered[option] {
				t.Errorf("pg_session option %s of (*%s).UnmarshalCaddyfile is set in no golden file; add a story to %s",
					option, receiver, goldenDir)
			}
		}
	}
}

// optionLists are one UnmarshalCaddyfile's option names, sorted: from its doc comment and from
// the table of options it reads.
type optionLists struct{ doc, parsed []string }

// documentedOptions reads the UnmarshalCaddyfile methods of path, by receiver type name.
func documentedOptions(t *testing.T, path string) map[string]optionLists {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	lists := map[string]optionLists{}
	for _, decl := range file.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "UnmarshalCaddyfile" || fn.Recv == nil || fn.Doc == nil {
			continue
		}
		star, ok := fn.Recv.List[0].Type.(*ast.StarExpr)
		if !ok {
			continue
		}
		receiver := star.X.(*ast.Ident).Name
		var doc []string
		// The syntax block is an indented code block of the comment, in Caddyfile syntax itself,
		// so the tokenizer that reads the golden files reads it too, # comments and all.
		for _, block := range new(comment.Parser).Parse(fn.Doc.Text()).Content {
			code, ok := block.(*comment.Code)
			if !ok {
				continue
			}
			tokens, err := caddyfile.Tokenize([]byte(code.Text), fmt.Sprintf("doc comment of (*%s).UnmarshalCaddyfile", receiver))
			if err != nil {
				t.Fatal(err)
			}
			doc = append(doc, pgSessionOptions(tokens)...)
		}
		slices.Sort(doc)
		lists[receiver] = optionLists{doc: slices.Compact(doc), parsed: parsedOptions[receiver]()}
	}
	return lists
}

// pgSessionOptions returns the option names set in every pg_session { ... } block of tokens,
// walking them with a Dispenser as the parser does, so arguments are never taken for options.
// An option of a block nested in an option, as identity_provider's, is named after both:
// "identity_provider/issuer".
func pgSessionOptions(tokens []caddyfile.Token) []string {
	var options []string
	d := caddyfile.NewDispenser(tokens)
	for d.Next() {
		if d.Val() != "pg_session" {
			continue
		}
		for d.NextBlock(0) {
			option := d.Val()
			options = append(options, option)
			d.RemainingArgs()
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				options = append(options, option+"/"+d.Val())
				d.RemainingArgs()
			}
		}
	}
	return options
}

// parsedOptions returns, sorted, the options each UnmarshalCaddyfile reads, by receiver type name,
// with the options of nested blocks named as pgSessionOptions names them.
var parsedOptions = map[string]func() []string{
	"App": func() []string {
		options := slices.Collect(maps.Keys(new(App).options()))
		for sub := range maps.Keys(providerOptions(new(identity.Config))) {
			options = append(options, "identity_provider/"+sub)
		}
		for sub := range maps.Keys(smtpOptions(new(mail.Config))) {
			options = append(options, "smtp/"+sub)
		}
		slices.Sort(options)
		return options
	},
	"Handler": func() []string { return slices.Sorted(maps.Keys(new(Handler).options())) },
}

// without returns the names of all that are not in some.
func without(all, some []string) []string {
	var rest []string
	for _, name := range all {
		if !slices.Contains(some, name) {
			rest = append(rest, name)
		}
	}
	return rest
}
