package web

import "time"

// ProviderButton is one identity provider (Google, GitHub, a Keycloak…) as
// the login page offers it, "Sign in with <Label>", and as the account page
// offers to link it, "Link <Label>".
type ProviderButton struct {
	// Name is the provider's name in the configuration, e.g. "google":
	// the account page's link form sends it as provider=<Name>.
	Name string
	// Label is what the button calls the provider, e.g. "Google". It is
	// the operator's text, shown escaped like every other value.
	Label string
	// Href is the login page's GET link that starts the sign-in, a path on
	// this site such as "/login/with/google?redirect=%2Fdocs%2F"; the
	// account page, whose link is a POST form, does not use it.
	Href string
	// Unavailable shows the provider disabled, neither a link nor a form,
	// with "<Label> is unavailable right now." (role="status"), e.g. while
	// its discovery document cannot be fetched; Reason, when set, follows
	// that sentence, e.g. "Try again in a few minutes." It is shown to
	// anyone who opens the login page, so it must not carry an error's
	// details.
	Unavailable bool
	Reason      string
}

// LinkedIdentity is one of the user's accounts at an identity provider, on
// the account page's "Linked accounts" section. Its unlink form POSTs to
// AccountPage.Action with action=unlink-identity and provider=<Provider>,
// and subject=<Subject> when Subject is set.
type LinkedIdentity struct {
	Provider string // the provider's name in the configuration, e.g. "google"
	Label    string // the provider's label, e.g. "Google"
	Email    string // the address the provider gave, e.g. "alice@example.com"; empty hides it
	// Subject, when set, is sent back with the provider so that an unlink
	// removes this identity and no other that was linked since, e.g. in
	// another tab.
	Subject    string
	LinkedAt   time.Time // shown as "Linked"; the zero time hides it
	LastUsedAt time.Time // shown as "Last used"; the zero time hides it
	// CanUnlink offers the "Unlink" button. Without it the button is shown
	// disabled, described by Why, e.g. "It is your only way to sign in:
	// set a password first" (the default when Why is empty).
	CanUnlink bool
	Why       string
}
