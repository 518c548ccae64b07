package routes

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// One parser reads a bearer credential for the gate and the admin routes.
func TestParseBearer(t *testing.T) {
	for value, want := range map[string]string{
		"Bearer tok": "tok", "bearer tok": "tok", "BEARER tok": "tok", "Bearer\ttok": "tok",
		"Bearer  tok": "tok", "Bearer \t tok \t": "tok",
		"Bearer": "", "Bearer ": "", "Bearertok": "", "Basic tok": "", "": "", "Bear tok": "", "XBearer tok": "",
	} {
		got, ok := ParseBearer(value)
		assert.Equal(t, want, got, "%q", value)
		assert.Equal(t, want != "", ok, "%q", value)
	}
}
