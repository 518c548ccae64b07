package pgsession

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/pgsession/caddy-pgsession/internal/routes"
)

// Every refusal reason the code gives is a row of the reference's table,
// with the one status it is answered with, and the table holds no other:
// handle_errors users match on these names.
func TestReferenceListsEveryRefusalReason(t *testing.T) {
	t.Parallel()
	rows := refusalReasonRows(t)
	for r, status := range routes.ReasonStatus {
		row, ok := rows[string(r)]
		switch {
		case !ok:
			t.Errorf("refusal reason %s (%d) has no row in the Refusal reasons table of %s", r, status, referencePath)
		case row.status != status:
			t.Errorf("refusal reason %s: %s says %d, the code answers %d", r, referencePath, row.status, status)
		case row.meaning == "":
			t.Errorf("refusal reason %s has no meaning in %s", r, referencePath)
		}
	}
	for name := range rows {
		if _, ok := routes.ReasonStatus[routes.Reason(name)]; !ok {
			t.Errorf("%s lists the refusal reason %s, which the code never gives", referencePath, name)
		}
	}
}

type reasonRow struct {
	status  int
	meaning string
}

// refusalReasonRows reads the table of the reference's "Refusal reasons"
// section: | `name` | status | meaning |.
func refusalReasonRows(t *testing.T) map[string]reasonRow {
	t.Helper()
	raw, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Refusal reasons\n")
	if !ok {
		t.Fatalf("%s has no Refusal reasons section", referencePath)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]reasonRow{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([0-9]{3}) \\| (.*) \\|$").FindAllStringSubmatch(section, -1) {
		status, _ := strconv.Atoi(m[2])
		if http.StatusText(status) == "" {
			t.Errorf("refusal reason %s: %d is no HTTP status", m[1], status)
		}
		rows[m[1]] = reasonRow{status: status, meaning: strings.TrimSpace(m[3])}
	}
	if len(rows) == 0 {
		t.Fatalf("found no rows in the Refusal reasons table of %s", referencePath)
	}
	return rows
}

// docFiles are the Markdown files users and contributors read.
func docFiles(t *testing.T) []string {
	t.Helper()
	guides, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"README.md", "CONTRIBUTING.md", "SECURITY.md", "xcaddy.md"}, guides...)
}

// Moving a section breaks the links to it: each relative link of the docs
// names a file that exists and, with #anchor, a heading of that file.
func TestDocsLinksResolve(t *testing.T) {
	t.Parallel()
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, file := range docFiles(t) {
		for _, m := range link.FindAllStringSubmatch(outsideCodeBlocks(t, file), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			if path == "" {
				path = file // #anchor: a heading of this file
			} else {
				path = filepath.Join(filepath.Dir(file), path)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", file, target)
				continue
			}
			if anchor != "" && !markdownAnchors(t, path)[anchor] {
				t.Errorf("%s links to %s: %s has no heading with the anchor #%s", file, target, path, anchor)
			}
		}
	}
}

// Tables hold short cells; what needs a paragraph gets one under the table.
func TestDocsTableCellsAreShort(t *testing.T) {
	t.Parallel()
	const longest = 300
	for _, file := range docFiles(t) {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(raw), "\n") {
			if !strings.HasPrefix(line, "|") {
				continue
			}
			for _, cell := range strings.Split(strings.Trim(line, "|"), " | ") {
				if n := len([]rune(strings.TrimSpace(cell))); n > longest {
					t.Errorf("%s:%d: a table cell of %d characters (at most %d): %.60s…", file, i+1, n, longest, strings.TrimSpace(cell))
				}
			}
		}
	}
}

// outsideCodeBlocks returns file's text without its fenced code blocks.
func outsideCodeBlocks(t *testing.T, file string) string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fenced := false
	for line := range strings.SplitSeq(string(raw), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// markdownAnchors returns the anchors GitHub gives the headings of a
// Markdown file: lowercased, punctuation dropped, spaces as hyphens, a
// repeated one numbered. Other files have none.
func markdownAnchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	anchors := map[string]bool{}
	if !strings.HasSuffix(file, ".md") {
		return anchors
	}
	seen := map[string]int{}
	for line := range strings.SplitSeq(outsideCodeBlocks(t, file), "\n") {
		heading := strings.TrimLeft(line, "#")
		if len(heading) == len(line) || !strings.HasPrefix(heading, " ") {
			continue
		}
		slug := strings.Map(func(r rune) rune {
			switch {
			case r == ' ':
				return '-'
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				return unicode.ToLower(r)
			}
			return -1
		}, strings.TrimSpace(heading))
		if n := seen[slug]; n > 0 {
			anchors[slug+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	return anchors
}
