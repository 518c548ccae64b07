package pgsession

import (
	"crypto/rand"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/store"
)

// Test seams for the in-process sites of site_test.go, in the manner of
// pgx's export_test.go: what those tests need of the package's insides,
// without widening its API. The sites are otherwise driven only through
// exported options and HTTP, so when the insides are renamed, this file is
// the one to follow.

// cheapHashing makes app hash new passwords (and the fake hash an unknown
// user is checked against) in microseconds: at the default 19 MiB a hash
// takes hundreds of milliseconds under the race detector. How passwords are
// hashed is the store's tests' business. Call it before Provision.
func cheapHashing(app *App) { app.storeOptions = store.Options{Argon2: cheapArgon2} }

// cheapArgon2 is the cost of every password hash the in-process tests make.
var cheapArgon2 = store.Argon2Params{Memory: 64, Passes: 1}

// logAppTo makes a provisioned app log to l. A caddy.Context without a
// config gives each module a development logger on stderr, which a test
// cannot read. Call it between Provision and Start.
func logAppTo(app *App, l *zap.Logger) {
	app.logger = l
	app.health.Logger = l
}

// provisionHandler sets h up on app, as Provision does once Caddy's config
// has found the app, and makes it log to l.
func provisionHandler(ctx caddy.Context, h *Handler, app *App, l *zap.Logger) error {
	h.logger = l
	return h.provision(ctx, app)
}

// countSessionsEvery makes app count the sessions for its gauges every d
// instead of every minute. Call it before Start.
func countSessionsEvery(app *App, d time.Duration) { app.countEvery = d }

// serverOf makes app a config of an in-process server of its own or, when
// of is a site's app, a new config of that site's server, as after a
// reload, which keeps the server's memory and listening connection. In
// Caddy the process is the server; the in-process sites share a process,
// and would otherwise share memory whenever their options match. Call it
// before Provision.
func serverOf(app, of *App) {
	if of != nil {
		app.instance = of.instance
		return
	}
	app.instance = rand.Text()
}

// summarizeOutagesEvery makes app sum up an ongoing outage in the log every
// d instead of every 10 s. Call it before Start.
func summarizeOutagesEvery(app *App, d time.Duration) { app.health.SummaryEvery = d }
