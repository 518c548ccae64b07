package pgsession

import (
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pgsession/caddy-pgsession/internal/engine"
)

// keepKeysPerConnection makes every connection of srv keep the key of the
// last session token it carried, so that the gate hashes a browser's
// cookie once per connection (see engine.KeyOfRequest). Each handler on
// the server registers it; a connection gets one all the same.
func keepKeysPerConnection(srv *caddyhttp.Server) {
	srv.RegisterConnContext(engine.WithLastKey)
}
