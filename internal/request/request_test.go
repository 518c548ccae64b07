package request

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSafeRedirect(t *testing.T) {
	for target, want := range map[string]string{
		"/":                       "/",
		"/docs/page.html?lang=en": "/docs/page.html?lang=en",
		"/a#frag":                 "/a#frag",
		"":                        "/",
		"//evil.example":          "/",
		"///evil.example":         "/",
		"https://evil.example":    "/",
		`/\evil.example`:          "/",
		`\\evil.example`:          "/",
		"/\t/evil.example":        "/",
		"/\n/evil.example":        "/",
		"javascript:alert(1)":     "/",
		"evil.example":            "/",
		"/ok/../still-here":       "/ok/../still-here",
		"/%2F%2Fevil.example":     "/%2F%2Fevil.example",
	} {
		assert.Equal(t, want, SafeRedirect(target), "%q", target)
	}
}
