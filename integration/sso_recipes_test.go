package integration

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"text/template"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The forward-auth recipes of docs/forward-auth.md, as templates: the
// tests run them with the ports of their own processes, and
// TestForwardAuthRecipesAreTheDocs holds the doc to the same text with the
// doc's names, so neither can change without the other.

// recipeValues are what a recipe names: the doc's example names, or the
// test's processes.
type recipeValues struct {
	Site       string // the Caddy site behind forward_auth
	ServerName string // the nginx server's name
	Listen     string // what the nginx server listens on
	TLS        bool   // the doc's nginx serves and asks over TLS; the tests' run plain HTTP
	Verify     string // scheme://host[:port] where the portal is reached
	Portal     string // the portal's host, as its site block answers to it
	App        string // host:port of the application behind the proxy
}

// docValues are the doc's names.
var docValues = recipeValues{
	Site:       "wiki.example.com",
	ServerName: "app.example.com",
	Listen:     "443 ssl",
	TLS:        true,
	Verify:     "https://auth.example.com",
	Portal:     "auth.example.com",
	App:        "localhost:8080",
}

// forwardAuthRecipe is Caddy's forward_auth on a Caddy without the plugin.
// route keeps the order as written: alone, request_header would run after
// forward_auth (Caddy's default order) and delete what it copied.
const forwardAuthRecipe = `{{.Site}} {
	@protected not path /public/*
	route {
		# Whatever a client sends under these names never reaches the app.
		request_header -X-Auth-*
		forward_auth @protected {{.Verify}} {
			uri /api/auth/verify
			# The portal's site answers to its own name, not this site's.
			header_up Host {{.Portal}}
			copy_headers X-Auth-User-Id X-Auth-Username X-Auth-Groups X-Auth-Method
		}
		reverse_proxy {{.App}}
	}
}
`

// nginxRecipe is nginx's auth_request.
const nginxRecipe = `server {
	listen {{.Listen}};
	server_name {{.ServerName}};
{{- if .TLS}}
	ssl_certificate /etc/ssl/certs/app.example.com.pem;
	ssl_certificate_key /etc/ssl/private/app.example.com.key;
{{- end}}

	# Every request is checked by the portal first; only a 200 lets it on.
	auth_request /_pg_session/verify;
	auth_request_set $auth_user_id $upstream_http_x_auth_user_id;
	auth_request_set $auth_username $upstream_http_x_auth_username;
	auth_request_set $auth_groups $upstream_http_x_auth_groups;
	auth_request_set $auth_method $upstream_http_x_auth_method;
	# auth_request cannot pass a redirect on: the portal tells a browser
	# where to sign in with a 401 and a Location, and this sends it there.
	auth_request_set $auth_location $upstream_http_location;
	error_page 401 = @pg_session_sign_in;

	# Each replaces every copy of the header the client sent, in any case,
	# with the portal's value, or with none when the portal gave none.
	proxy_set_header X-Auth-User-Id $auth_user_id;
	proxy_set_header X-Auth-Username $auth_username;
	proxy_set_header X-Auth-Groups $auth_groups;
	proxy_set_header X-Auth-Method $auth_method;
	proxy_set_header Host $host;

	location / {
		proxy_pass http://{{.App}};
	}

	location /public/ {
		auth_request off;
		proxy_pass http://{{.App}};
	}

	location @pg_session_sign_in {
		# A script gets no Location, and keeps the 401 (error_page 401 =302
		# $auth_location alone would send it a redirect to nowhere).
		if ($auth_location = "") {
			return 401;
		}
		return 302 $auth_location;
	}

	location = /_pg_session/verify {
		internal;
		proxy_pass {{.Verify}}/api/auth/verify?for=nginx;
{{- if .TLS}}
		proxy_ssl_server_name on;
		proxy_ssl_verify on;
		proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;
{{- end}}
		proxy_method GET;
		proxy_pass_request_body off;
		proxy_set_header Content-Length "";
		proxy_set_header Host {{.Portal}};
		# All of them, so that none a client sent is taken for nginx's.
		proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
		proxy_set_header X-Forwarded-Method $request_method;
		proxy_set_header X-Forwarded-Proto $scheme;
		proxy_set_header X-Forwarded-Host $http_host;
		proxy_set_header X-Forwarded-Uri $request_uri;
		proxy_set_header X-Forwarded-For $remote_addr;
	}
}
`

// renderRecipe is recipe with v's names.
func renderRecipe(t *testing.T, recipe string, v recipeValues) string {
	t.Helper()
	var b strings.Builder
	require.NoError(t, template.Must(template.New("").Parse(recipe)).Execute(&b, v))
	return b.String()
}

// docRecipe is the fenced block of docs/forward-auth.md that follows the
// comment <!-- recipe: name -->.
func docRecipe(t *testing.T, doc, name string) string {
	t.Helper()
	re := regexp.MustCompile("(?s)<!-- recipe: " + regexp.QuoteMeta(name) + " -->\n```[a-z]*\n(.*?)```\n")
	m := re.FindAllStringSubmatch(doc, -1)
	require.Len(t, m, 1, "docs/forward-auth.md has one block marked <!-- recipe: %s -->", name)
	return m[0][1]
}

// The recipes in docs/forward-auth.md are the ones the tests run, with the
// doc's names in place of the test's.
func TestForwardAuthRecipesAreTheDocs(t *testing.T) {
	data, err := os.ReadFile("../docs/forward-auth.md")
	require.NoError(t, err)
	doc := string(data)
	for name, recipe := range map[string]string{"caddy forward_auth": forwardAuthRecipe, "nginx auth_request": nginxRecipe} {
		assert.Equal(t, renderRecipe(t, recipe, docValues), docRecipe(t, doc, name),
			"docs/forward-auth.md's %s recipe is not the one the tests run", name)
	}
}
