// Command caddy is Caddy with its standard modules and the pg_session
// plugin, for development, tests and the demo. Production builds use xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/pgsession/caddy-pgsession"
)

func main() {
	caddycmd.Main()
}
