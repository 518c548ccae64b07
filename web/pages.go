package web

// The data of the small pages: a message, and a sign-in's second step.

// MessagePage is what the message template is executed with: a short page
// that says one thing and offers a way on, such as a refused request or the
// question whether to sign out.
type MessagePage struct {
	Heading  string // the h1, and the start of the <title>, e.g. "Temporarily unavailable"
	SiteName string // the site's name, added to the <title>: "Temporarily unavailable · Example Docs"
	Status   int    // an HTTP error status, shown small above the heading ("Error 503"); 0 hides it
	Message  string // a paragraph under the heading; empty hides it
	Detail   string // a second paragraph, e.g. "Try again in 4 minutes."; empty hides it
	// Action, when non-empty, shows a form that POSTs to this path with
	// one button labelled Button, e.g. "/logout" and "Sign out".
	Action string
	Button string
	// Links are the ways on, local paths only; the first is shown as a
	// button when there is no form.
	Links []Link
}

// SecondFactorPage is what the second step of a sign-in is executed with:
// a form for the authenticator's code, and one for a recovery code.
type SecondFactorPage struct {
	Title    string // default "Two-step sign-in"
	SiteName string
	Action   string // where both forms POST: code=… or recovery_code=…, with redirect
	Redirect string // carried in a hidden input named "redirect"
	Error    string // e.g. "Invalid code" (role="alert")
	Recovery bool   // the error is the recovery code's: open that form and focus it
	// Notice says why the page asks, above the forms: a step-up names who
	// is signed in.
	Notice    string
	LoginHref string // the login page, to start over
	// BackText is the words of the link to LoginHref; default "Start over".
	BackText string
	// What the user can finish with: TOTP shows the code form, RecoveryCodes
	// the recovery code form, and PasskeyAPI (the plugin's API path) a
	// "Use a passkey" button, which the page's script shows once the
	// browser can use passkeys.
	TOTP          bool
	RecoveryCodes bool
	PasskeyAPI    string
	// PasskeyFlow is the passkey routes the button uses, under
	// {PasskeyAPI}/passkeys/: "login" by default, "step-up" to step up the
	// session the browser has.
	PasskeyFlow string
}

// Link is a link of a MessagePage.
type Link struct {
	Href string // a path on this site, e.g. "/"
	Text string // e.g. "Try again"
}
