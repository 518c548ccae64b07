package pgsession

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/pgsession/caddy-pgsession/internal/routes"
)

// The admin API on Caddy's admin endpoint (localhost:2019 by default), as
// Caddy's reverse proxy serves its upstreams there (admin.api.reverse_proxy):
// /pg-session/<rest> is {api}/admin/<rest> of a site, the same routes, for
// an operator on the host, who needs no admin_token. Caddy's admin endpoint
// is the trust boundary: whoever may reach it may load any config, which
// is more than any admin route does.

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// adminAPIPrefix is where the module's routes are on the admin endpoint.
const adminAPIPrefix = "/pg-session/"

// adminAPIActor names the admin endpoint's callers in the log and the audit trail.
const adminAPIActor = "caddy admin endpoint"

// AdminAPI is the admin.api.pg_session module. Caddy loads every admin.api
// module itself, with its admin endpoint: it needs no configuration.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.pg_session",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes serves everything under /pg-session/.
func (AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminAPIPrefix, Handler: caddy.AdminHandlerFunc(serveAdminAPI)}}
}

// serveAdminAPI finds the running pg_session app at each request: the
// admin endpoint outlives configs, so the app of the config it was made
// with may be long gone.
func serveAdminAPI(w http.ResponseWriter, r *http.Request) error {
	app := runningApps.current()
	if app == nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("no pg_session app is running"),
			Message: "no pg_session app is running: the running config has no pg_session global option"}
	}
	return app.serveAdminAPI(w, r)
}

// runningApps are the pg_session apps started and not stopped, oldest
// first: more than one while a reload's new config starts before the old
// one stops.
var runningApps appsRunning

type appsRunning struct {
	mu   sync.Mutex
	apps []*App
}

func (l *appsRunning) started(a *App) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.apps = append(l.apps, a)
}

func (l *appsRunning) stopped(a *App) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.apps = slices.DeleteFunc(l.apps, func(b *App) bool { return b == a })
}

// current is the app of the config Caddy runs, or, while a config starts
// and before Caddy makes it the running one, the app that started last.
func (l *appsRunning) current() *App {
	active, _ := caddy.ActiveContext().AppIfConfigured("pg_session")
	l.mu.Lock()
	defer l.mu.Unlock()
	if a, ok := active.(*App); ok && slices.Contains(l.apps, a) {
		return a
	}
	if len(l.apps) == 0 {
		return nil
	}
	return l.apps[len(l.apps)-1]
}

// serveAdminAPI serves r, under /pg-session/, with the app's admin routes.
func (a *App) serveAdminAPI(w http.ResponseWriter, r *http.Request) error {
	site, err := a.adminSite()
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err, Message: "the pg_session admin API: " + err.Error()}
	}
	rest := strings.TrimPrefix(r.URL.EscapedPath(), adminAPIPrefix)
	err = site.ServeAdmin(w, r, rest, adminAPIActor)
	switch {
	case errors.Is(err, routes.ErrNoAdminRoute):
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err, Message: fmt.Sprintf("no pg_session admin route at %s: "+
			"%s<rest> serves what {api_path}/admin/<rest> does (users, sessions, groups…), see docs/reference.md", r.URL.Path, adminAPIPrefix)}
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err, Message: "the pg_session admin API failed; see Caddy's log"}
	}
	return nil
}

// adminAPISite is the site the admin endpoint's requests are served by:
// one with the default options, made at its first request, since its admin
// routes read only the app's store and memory.
type adminAPISite struct {
	once sync.Once
	site *routes.Site
	err  error
}

func (a *App) adminSite() (*routes.Site, error) {
	a.adminAPI.once.Do(func() {
		h := &Handler{logger: a.logger.Named("admin_api")}
		if err := h.provision(caddy.Context{Context: context.Background()}, a); err != nil {
			a.adminAPI.err = err
			return
		}
		a.adminAPI.site = h.site
	})
	return a.adminAPI.site, a.adminAPI.err
}

// Interface guards
var _ caddy.AdminRouter = AdminAPI{}
