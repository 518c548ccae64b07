// Package control is the language of the test providers' control API: the
// JSON bodies that package oidctest sends and the provider program reads,
// defined once for both sides of the process boundary.
package control

// User is an account of the OpenID provider, and the claims of its ID
// tokens and userinfo: sub always, preferred_username and name with the
// profile scope, email and email_verified with email, groups with groups,
// and amr and acr in the ID token whatever the scope.
type User struct {
	Subject           string   `json:"subject"`
	Email             string   `json:"email,omitempty"`
	EmailVerified     bool     `json:"email_verified,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Name              string   `json:"name,omitempty"`
	Groups            []string `json:"groups,omitempty"`
	AMR               []string `json:"amr,omitempty"`
	ACR               string   `json:"acr,omitempty"`
}

// Knobs spoil the next ID token the provider issues, and only that one;
// the token is otherwise good and signed again after the change.
type Knobs struct {
	// Audience replaces the aud claim (the client id) with this one.
	Audience string `json:"audience,omitempty"`
	// Expired puts exp an hour in the past (iat, nbf and auth_time two).
	Expired bool `json:"expired,omitempty"`
	// Nonce replaces the nonce of the authorization request.
	Nonce string `json:"nonce,omitempty"`
	// Issuer replaces the iss claim.
	Issuer string `json:"issuer,omitempty"`
	// SignWithOtherKey signs with a key the provider never publishes,
	// under the kid of its signing key.
	SignWithOtherKey bool `json:"sign_with_other_key,omitempty"`
}

// Rotation asks for a new signing key.
type Rotation struct {
	// KeepOld keeps the previous key published until the next rotation.
	KeepOld bool `json:"keep_old"`
}

// Rotated names the new signing key.
type Rotated struct {
	Kid string `json:"kid"`
}

// RedirectURI is one more redirect URI for the client.
type RedirectURI struct {
	URI string `json:"uri"`
}

// GitHubUser is a GitHub account: what GET /user, /user/emails,
// /user/orgs and /user/teams answer for its tokens, and the memberships
// the checks of an organisation or team find.
type GitHubUser struct {
	Login string `json:"login"`
	// ID is the account's number; one is made up when zero.
	ID   int64  `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
	// Email is the profile's public email, null on /user when empty.
	Email  string        `json:"email,omitempty"`
	Emails []GitHubEmail `json:"emails,omitempty"`
	// Orgs are the organisations the user belongs to, privately, as a
	// membership is until its member makes it public: a token needs
	// read:org to see them.
	Orgs  []string     `json:"orgs,omitempty"`
	Teams []GitHubTeam `json:"teams,omitempty"`
}

// GitHubEmail is an address of GET /user/emails.
type GitHubEmail struct {
	Email    string `json:"email"`
	Primary  bool   `json:"primary"`
	Verified bool   `json:"verified"`
	// Visibility is "public", "private" or, when empty, null.
	Visibility string `json:"visibility,omitempty"`
}

// GitHubTeam is a team the user is in; Org must be among the user's Orgs.
type GitHubTeam struct {
	Org  string `json:"org"`
	Slug string `json:"slug"`
	Name string `json:"name,omitempty"`
}
