package web

import (
	_ "embed"
	"html/template"
	"sync"
)

// The pages of a password reset: asking for a link, and setting the new
// password from it. Both are built-in pages, with the login page's style.

// ForgotPage is what the "Forgot your password?" page is executed with: a
// form that POSTs login (a username or an email address) to Action.
type ForgotPage struct {
	SiteName  string
	Action    string // e.g. "/login/forgot"
	Login     string // re-filled after a refusal
	Error     string // e.g. "Enter your username or email address" (role="alert")
	LoginHref string // the login page
}

// ResetPage is what the page of a reset link is executed with: a form that
// POSTs token, password and confirm to Action.
type ResetPage struct {
	SiteName  string
	Action    string // e.g. "/login/reset"
	Token     string // the link's token, carried in a hidden input
	Username  string // the account, named on the page and given to password managers
	Error     string // e.g. "The two passwords differ" (role="alert")
	LoginHref string
}

var (
	//go:embed forgot.html
	forgotHTML string

	//go:embed reset.html
	resetHTML string

	forgotTemplate = sync.OnceValue(func() *template.Template { return page("forgot.html", forgotHTML) })
	resetTemplate  = sync.OnceValue(func() *template.Template { return page("reset.html", resetHTML) })
)

// ForgotTemplate returns the "Forgot your password?" page, executed with a
// ForgotPage; shared, like the other pages'.
func ForgotTemplate() *template.Template { return forgotTemplate() }

// ResetTemplate returns the page of a reset link, executed with a
// ResetPage; shared, like the other pages'.
func ResetTemplate() *template.Template { return resetTemplate() }
