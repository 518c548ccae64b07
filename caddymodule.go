// Package pgsession is a Caddy module that puts a login in front of a site,
// with server-side sessions kept in PostgreSQL.
//
// It adds the pg_session app (the global option: database, schema, cleanup
// job), the http.handlers.pg_session handler (the directive: the gate and
// its login routes) and the `caddy pg-session` command.
package pgsession

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/pgsession/caddy-pgsession/internal/cli"
)

func init() {
	caddy.RegisterModule(App{})
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterGlobalOption("pg_session", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("pg_session", parseHandlerDirective)
	// Before basic_auth, with the other authentication, so users need no order line.
	httpcaddyfile.RegisterDirectiveOrder("pg_session", httpcaddyfile.Before, "basic_auth")
	caddycmd.RegisterCommand(cli.Command())
	cli.PublicMatcher = publicMatcher
}
