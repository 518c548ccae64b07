package routes

import (
	"errors"
	"net/http"
	"net/url"
)

// The admin API served elsewhere than on a site: Caddy's admin endpoint
// (the admin.api.pg_session module) serves {api}/admin/<rest> at
// /pg-session/<rest>, through the same routes, so every admin route added
// here is there too, with nothing to copy.

// ErrNoAdminRoute is ServeAdmin's answer for a path no admin route has.
var ErrNoAdminRoute = errors.New("no admin route has that path")

// ServeAdmin serves rest, the path below {api}/admin/ as the client sent
// it (escaped), as the admin route of that path serves it, for a caller
// who is an admin because another gate said so; via names that gate in
// the log and the audit trail. Refusals are answered here, as JSON; a path
// of no admin route is ErrNoAdminRoute, for the caller to answer.
func (h *Site) ServeAdmin(w http.ResponseWriter, r *http.Request, rest, via string) error {
	path, err := url.PathUnescape(rest)
	if err != nil {
		return ErrNoAdminRoute
	}
	r = r.Clone(r.Context())
	r.URL.Path, r.URL.RawPath = h.APIPath+"/admin/"+path, h.APIPath+"/admin/"+rest
	rte, params, allowed := h.router.match(r)
	switch {
	case rte == nil && allowed == nil, rte != nil && rte.access != admin:
		return ErrNoAdminRoute
	}
	w.Header().Set("Cache-Control", "no-store")
	if rte == nil {
		return h.Answer(w, r, methodNotAllowed(w, allowed))
	}
	for k, v := range params {
		r.SetPathValue(k, v)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// Caddy's admin endpoint checks the Origin itself; this is the
		// site's own rule besides, so a browser's cross-site form cannot
		// act there either.
		if err := h.originGuard.Check(r); err != nil {
			return h.Answer(w, r, refuse(ReasonCrossOrigin, "Cross-origin request refused"))
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	}
	return h.Answer(w, r, rte.serve(w, r, &caller{admin: true, via: via}))
}
