package routes

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A browser is told from a script by its Accept header: what every
// browser sends for a page or a form gets HTML, what scripts send gets JSON.
func TestPrefersHTML(t *testing.T) {
	for accept, html := range map[string]bool{
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8":                       true, // Firefox, Safari
		"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8": true, // Chrome
		"text/html":                               true,
		"TEXT/HTML; charset=utf-8":                true,
		"application/xhtml+xml":                   true,
		"text/html;q=0.9, application/json;q=0.8": true,
		"":                                  false, // curl without -H, Go's client
		"*/*":                               false, // fetch(), curl
		"application/json":                  false,
		"application/json, text/plain, */*": false, // axios
		"application/json, text/html":       false, // a tie goes to JSON
		"text/html;q=0.5, application/json": false,
		"text/html;q=0.5, application/*":    false,
		"text/html;q=0.5, application/problem+json": false,
		"text/html;q=0":                   false,
		"text/html;q=x":                   false,
		"text/html;q=2":                   false,
		"text/*":                          false,
		"image/avif,image/webp,*/*;q=0.8": false, // an <img>
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		assert.Equal(t, html, prefersHTML(r), "Accept: %s", accept)
	}
	// Two header lines count as one list.
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Add("Accept", "application/json;q=0.5")
	r.Header.Add("Accept", "text/html")
	assert.True(t, prefersHTML(r))
}

func TestWaitText(t *testing.T) {
	for seconds, want := range map[int]string{
		1: "1 second", 5: "5 seconds", 59: "59 seconds", 60: "1 minute", 61: "2 minutes", 240: "4 minutes",
		899: "15 minutes", 900: "15 minutes", 7199: "120 minutes", 7200: "2 hours", 7201: "3 hours", 86400: "24 hours",
	} {
		assert.Equal(t, want, waitText(seconds), "%d s", seconds)
	}
}

// Every reason a refusal can name is answered with a status of its own:
// a constant left out of ReasonStatus would be answered with status 0.
func TestEveryReasonHasItsStatus(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, 0)
	require.NoError(t, err)
	var names []string
	for _, decl := range file.Decls {
		if gen, ok := decl.(*ast.GenDecl); ok && gen.Tok == token.CONST {
			for _, spec := range gen.Specs {
				for _, name := range spec.(*ast.ValueSpec).Names {
					names = append(names, name.Name)
				}
			}
		}
	}
	require.Len(t, ReasonStatus, len(names), "reasons.go declares %v", names)
	for why, status := range ReasonStatus {
		assert.NotEmpty(t, http.StatusText(status), "%s", why)
		assert.Regexp(t, `^[a-z][a-z_]*[a-z]$`, string(why))
	}
}
