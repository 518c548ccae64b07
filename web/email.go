package web

// AccountEmail is the account page's "Email address" section: the user's
// address and whether it is verified, and, when the site sends mail
// (CanChange), a form (action=email, email) that mails a link to a new
// address, which becomes the user's only once the link is opened. Without
// mail the section says that an admin sets the address.
type AccountEmail struct {
	Address   string // "" for none
	Verified  bool
	CanChange bool
	// Error is shown by the form, e.g. "That is not an email address"; the
	// field is marked aria-invalid and focused.
	Error string
}
