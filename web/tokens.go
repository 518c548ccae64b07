package web

import "time"

// AccountTokens is the account page's "API tokens" section: the user's
// tokens, each with a revoke form (action=token-revoke, token=<Handle>), and
// a form to create one (action=token-create, token_name, token_expires: ""
// for never or a lifetime such as "30d", token_paths: path patterns
// separated by spaces or lines, and token_admin=on when Admin offers it).
type AccountTokens struct {
	List []AccountToken
	// Admin offers the choice of a token that may use the user's admin
	// rights: only an admin's token can have them.
	Admin bool
	// Error is shown by the create form, e.g. "You already have a token of
	// that name"; ErrorField names its field at fault, "token_name" or
	// "token_paths", which is marked aria-invalid and focused.
	Error      string
	ErrorField string
	// Created is the token just made, shown this once; nil on any other
	// showing of the page.
	Created *AccountNewToken
}

// AccountToken is one of the user's API tokens on the account page: never
// the token itself, which only the page that created it showed.
type AccountToken struct {
	Handle       string // opaque id, sent back in the revoke form
	Name         string
	CreatedAt    time.Time
	ExpiresAt    time.Time // the zero time: never
	Expired      bool      // expired lately: it is listed still, so its owner sees why a script stopped
	LastUsedAt   time.Time // the zero time: never used
	LastUsedFrom string    // the address it was last used from
	Paths        []string  // the path patterns it is limited to; none: every path
	Admin        bool      // it may use the user's admin rights
}

// AccountNewToken is a token just created, for the one page that shows it.
type AccountNewToken struct {
	Name  string
	Token string // pgs_…
	// SiteURL is an address of the site for the usage example, e.g.
	// "https://example.com/".
	SiteURL string
}
