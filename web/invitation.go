package web

import (
	_ "embed"
	"html/template"
	"sync"
	"time"
)

// InvitationPage is what the invitation page is executed with: an
// invitation to create an account, opened from its link. Its form POSTs
// token, username, password and confirm to Action.
type InvitationPage struct {
	Title    string // default "Create your account"
	SiteName string
	Action   string // e.g. "/login/invitation"
	Token    string // the invitation's token, carried in a hidden input
	// Email is whom the invitation was for, e.g. "ada@example.com"; empty
	// hides it.
	Email     string
	ExpiresAt time.Time // "works once, until …"; the zero time hides it
	Username  string    // re-filled after a refusal
	Error     string    // e.g. "That username is not available" (role="alert")
	// ErrorField is the field at fault, "username" or "password": it is
	// marked aria-invalid, described by the error, and focused.
	ErrorField string
	// Providers are the identity providers to create the account with,
	// each a link to its start with the invitation (Href).
	Providers []ProviderButton
}

//go:embed invitation.html
var invitationHTML string

var invitationTemplate = sync.OnceValue(func() *template.Template {
	return page("invitation.html", invitationHTML)
})

// InvitationTemplate returns the invitation page, executed with an
// InvitationPage; shared, like the other pages'. Unlike them it sends no
// Referer from its links and its form, since its address carries a token.
func InvitationTemplate() *template.Template { return invitationTemplate() }
