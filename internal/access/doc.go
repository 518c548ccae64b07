// Package access holds the per-path access rules of the pg_session
// directive: which signed-in users may reach which paths of a gated site.
//
//	pg_session {
//	    public /assets/*
//	    allow /admin/*    group admins second_factor
//	    allow /internal/* group staff admins
//	    deny  /drafts/*
//	    allow /*          any_user
//	}
//
// The rules are read in order and the first whose paths (Caddy's path
// matcher syntax) and methods match a request decides it; a request no rule
// matches keeps the gate's plain behaviour, any live session. public is not
// a rule: the gate serves those paths without a session before any rule is
// read.
//
// The package is pure Go apart from Caddy's path matcher, which it uses so
// that a rule's path means what the same pattern means in a site's own
// matchers, and the Caddyfile dispenser, which gives its syntax errors their
// file and line. It knows nothing of sessions or the store: the gate hands
// Decide the user as a Subject, so the rules are tested, benchmarked and
// explained (by check-access) without a database.
package access
