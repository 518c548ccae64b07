package web

import (
	_ "embed"
	"html/template"
	"sync"
	"time"
)

// The admin page: users, one user, a confirmation, invitations and the
// audit trail, each a page of its own in the account page's style, made of
// forms that POST, so it works without JavaScript.

// AdminFrame is what every admin page shows around its own part: the
// heading, the navigation, the outcome of the last action, and the way out.
type AdminFrame struct {
	Title    string // the h1 and the start of the <title>, e.g. "Users"
	SiteName string
	Home     string // the site's home page; "" hides the link
	// Base is the admin page's path (admin_path, e.g. "/admin"), which the
	// navigation links to.
	Base         string
	AccountPath  string // the signed-in admin's own account page
	LogoutAction string
	Admin        string // who is signed in
	// Section names the navigation's current entry: "users",
	// "invitations" or "audit" (marked aria-current="page").
	Section string
	// ShowInvitations and ShowAudit add those entries to the navigation.
	ShowInvitations bool
	ShowAudit       bool
	Notice          string // the outcome of the last action (role="status")
	Error           string // what was wrong with the last form (role="alert")
}

// AdminUsersPage is the list of users, {admin_path}.
type AdminUsersPage struct {
	AdminFrame
	Query string // the search, ?q=: names containing it, case aside
	Users []AdminUserRow
	// ShowEmail adds the users' addresses to the table.
	ShowEmail bool
	// New is the create form as it was sent, after a refusal: the name is
	// filled in again, the password never is. NewErrorField names the
	// field at fault ("username" or "password").
	NewUsername   string
	NewIsAdmin    bool
	NewErrorField string
	CreateAction  string // where the create form POSTs, e.g. "/admin/users"
}

// AdminUserRow is one user in the list.
type AdminUserRow struct {
	Username  string
	Href      string // the user's page
	IsAdmin   bool
	Groups    []string
	Email     string // "" for none (or a store without addresses)
	CreatedAt time.Time
	Sessions  int64 // live sessions
}

// AdminUserPage is one user's page, {admin_path}/users/{username}. Each
// form POSTs to Actions' paths; the destructive ones ask for confirmation
// first.
type AdminUserPage struct {
	AdminFrame
	Username    string
	IsAdmin     bool
	Self        bool // the admin looking at their own account
	HasPassword bool
	CreatedAt   time.Time
	// Email is the user's address, "" for none; EmailVerified says it was
	// confirmed by its link.
	Email         string
	EmailVerified bool
	Groups        []string // the user's
	OtherGroups   []string // the groups the user may join
	SecondFactor  string   // e.g. "authenticator app and 2 passkeys"; "" for none
	Sessions      []AccountSession
	SignIns       []AccountSignIn
	ShowSignIns   bool
	// ErrorField names the form field at fault after a refusal, e.g. "password".
	ErrorField string
	Actions    AdminUserActions
}

// AdminUserActions are the paths of a user page's forms.
type AdminUserActions struct {
	Admin         string // admin=on|off
	Password      string // password
	Join          string // group
	Leave         string // group
	EndSession    string // session=<handle>
	EndSessions   string
	ResetFactors  string
	Delete        string
	GroupsMissing bool // there are no groups to join: the form says so
}

// AdminConfirmPage asks whether to go on with a destructive action: its
// form repeats the action's fields with confirm=yes.
type AdminConfirmPage struct {
	AdminFrame
	Question string // the h2, e.g. "Delete alice?"
	Detail   string // what follows, e.g. "This ends her sessions and cannot be undone."
	Action   string // where the form POSTs
	Fields   []AdminField
	Button   string // e.g. "Delete alice"
	Cancel   string // where Cancel leads back to
}

// AdminField is a hidden field of a confirmation's form.
type AdminField struct{ Name, Value string }

// AdminInvitationsPage lists the invitations and makes new ones.
type AdminInvitationsPage struct {
	AdminFrame
	Invitations  []AdminInvitation
	Groups       []string // the groups an invitation may put its invitee in
	CreateAction string
	// Link is the link of the invitation just made, shown once when it
	// was not mailed.
	Link string
	// NewEmail, NewExpires keep the create form's values after a refusal.
	NewEmail   string
	NewExpires string
	Expiries   []AdminChoice
}

// AdminChoice is an option of a select.
type AdminChoice struct{ Value, Text string }

// AdminInvitation is one invitation in the list.
type AdminInvitation struct {
	ID        string
	Email     string
	Groups    []string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero while unused
	UsedBy    string
	Expired   bool
	Revoke    string // the revoke form's path; "" once used or expired
}

// AdminAuditPage is the audit trail, newest first, a page at a time.
type AdminAuditPage struct {
	AdminFrame
	Actor, Target string // the filters, as given
	Entries       []AdminAuditEntry
	Older         string // the next page's address; "" on the last
	Newest        string // the first page's address, when not on it
}

// AdminAuditEntry is one recorded admin action.
type AdminAuditEntry struct {
	At     time.Time
	Actor  string
	Action string
	Target string
	Detail string
	Remote string
	Status int // the HTTP status it was answered with; 0 from the command line
}

var (
	//go:embed admin_frame.html
	adminFrameHTML string
	//go:embed admin_users.html
	adminUsersHTML string
	//go:embed admin_user.html
	adminUserHTML string
	//go:embed admin_confirm.html
	adminConfirmHTML string
	//go:embed admin_invitations.html
	adminInvitationsHTML string
	//go:embed admin_audit.html
	adminAuditHTML string
)

// adminPage parses one of the admin pages with the frame they share.
func adminPage(name, text string) func() *template.Template {
	return sync.OnceValue(func() *template.Template {
		return template.Must(page(name, text).Parse(adminFrameHTML))
	})
}

var (
	adminUsersTemplate       = adminPage("admin_users.html", adminUsersHTML)
	adminUserTemplate        = adminPage("admin_user.html", adminUserHTML)
	adminConfirmTemplate     = adminPage("admin_confirm.html", adminConfirmHTML)
	adminInvitationsTemplate = adminPage("admin_invitations.html", adminInvitationsHTML)
	adminAuditTemplate       = adminPage("admin_audit.html", adminAuditHTML)
)

// AdminUsersTemplate is the list of users, executed with an AdminUsersPage.
// Like the other pages' templates, it is shared: do not modify it.
func AdminUsersTemplate() *template.Template { return adminUsersTemplate() }

// AdminUserTemplate is a user's page, executed with an AdminUserPage.
func AdminUserTemplate() *template.Template { return adminUserTemplate() }

// AdminConfirmTemplate asks to confirm an action, with an AdminConfirmPage.
func AdminConfirmTemplate() *template.Template { return adminConfirmTemplate() }

// AdminInvitationsTemplate is the invitations, with an AdminInvitationsPage.
func AdminInvitationsTemplate() *template.Template { return adminInvitationsTemplate() }

// AdminAuditTemplate is the audit trail, with an AdminAuditPage.
func AdminAuditTemplate() *template.Template { return adminAuditTemplate() }
