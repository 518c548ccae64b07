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
