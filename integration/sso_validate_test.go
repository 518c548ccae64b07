package integration

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// caddy validate refuses a site that a snippet with cookie_domain would put
// outside the domain: the session cookie would never reach it, and every
// visit would go to the portal and back.
func TestValidateRefusesASiteOutsideCookieDomain(t *testing.T) {
	t.Parallel()
	config := func(sites string) string {
		return `{
	pg_session {
		database_url postgres://127.0.0.1/app
	}
}
(sso) {
	pg_session {
		cookie_domain example.test
		login_url https://auth.example.test/login
	}
}
auth.example.test {
	import sso
	respond "portal"
}
` + sites + ` {
	import sso
	respond "site"
}
`
	}
	out, err := caddyCommand(t, "validate", config("docs.example.test wiki.other.test"))
	require.Error(t, err, out)
	assert.Contains(t, out, "the site wiki.other.test is not under cookie_domain example.test")

	out, err = caddyCommand(t, "validate", config("docs.example.test *.wiki.example.test"))
	require.NoError(t, err, out)
	assert.Contains(t, out, "Valid configuration")
}
