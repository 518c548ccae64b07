package routes

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// The admin page's invitations, {admin_path}/invitations: the list, used
// ones too, a form that makes one (mailed when it can be, otherwise shown
// once), and a revoke that asks first.

// invitationExpiries are the choices of the create form: "" is the site's
// invitation_lifetime.
var invitationExpiries = []web.AdminChoice{{Value: "1d", Text: "In 1 day"}, {Value: "3d", Text: "In 3 days"},
	{Value: "7d", Text: "In 7 days"}, {Value: "30d", Text: "In 30 days"}}

func (h *adminPageRoutes) serveInvitations(w http.ResponseWriter, r *http.Request, c *caller) error {
	page, err := h.invitationsPage(r, c)
	if err != nil {
		return err
	}
	page.Notice = notice(r, "")
	return h.render(w, r, http.StatusOK, web.AdminInvitationsTemplate(), page)
}

// invitationsPage lists the invitations, newest first as the store has them.
func (h *adminPageRoutes) invitationsPage(r *http.Request, c *caller) (web.AdminInvitationsPage, error) {
	base := h.AdminPath + "/invitations"
	page := web.AdminInvitationsPage{AdminFrame: h.frame(c, "Invitations", "invitations"), CreateAction: base,
		Expiries: append([]web.AdminChoice{{Value: "", Text: "After " + durationText(h.InvitationLifetime) + " (the default)"}},
			invitationExpiries...)}
	groups, err := h.store.ListGroups(r.Context())
	if err != nil {
		return page, storeUnavailable(err)
	}
	for _, g := range groups {
		page.Groups = append(page.Groups, g.Name)
	}
	list, err := h.store.ListInvitations(r.Context(), true)
	if err != nil {
		return page, storeUnavailable(err)
	}
	for _, inv := range list {
		row := web.AdminInvitation{ID: inv.ID, Email: inv.Email, Groups: inv.Groups, CreatedBy: inv.CreatedByName,
			CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt, UsedAt: inv.UsedAt, UsedBy: inv.UsedByName, Expired: inv.Expired}
		if inv.Status() == "open" {
			row.Revoke = base + "/" + inv.ID + "/revoke"
		}
		page.Invitations = append(page.Invitations, row)
	}
	return page, nil
}

// durationText says how long d is in whole days, or hours below a day.
func durationText(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return plural(int(d/(24*time.Hour)), "day")
	}
	return plural(int((d+time.Hour-1)/time.Hour), "hour")
}

// serveCreateInvitation makes an invitation from the form. A mailed one
// ends with a redirect, as the other forms do; one that was not mailed is
// answered with the page that shows its link, once: a redirect would have
// to carry the link, a credential, in its address, into the history and
// the logs.
func (h *adminPageRoutes) serveCreateInvitation(w http.ResponseWriter, r *http.Request, c *caller) error {
	email, expires := r.PostFormValue("email"), r.PostFormValue("expires")
	ttl := h.InvitationLifetime
	var err error
	if expires != "" {
		err = refuse(ReasonBadRequest, "Choose when the invitation expires from the list")
		for _, e := range invitationExpiries {
			if e.Value == expires {
				d, _ := caddy.ParseDuration(expires)
				ttl, err = d, nil
			}
		}
	}
	var made invitationJSON
	if err == nil {
		made, err = h.createInvitation(r, c, store.Invitation{Email: email, Groups: r.PostForm["group"]}, ttl,
			requestScheme(r)+"://"+r.Host+h.LoginPath)
	}
	if err == nil && made.Mailed {
		return done(w, r, h.AdminPath+"/invitations", "invitation-mailed")
	}
	ref, mistaken := formMistake(err)
	if err != nil && !mistaken {
		return err
	}
	page, perr := h.invitationsPage(r, c)
	if perr != nil {
		return perr
	}
	if mistaken {
		page.Error, page.NewEmail, page.NewExpires = sentence(ref.message), email, expires
		return h.render(w, r, ref.status, web.AdminInvitationsTemplate(), page)
	}
	page.Link = made.URL
	return h.render(w, r, http.StatusOK, web.AdminInvitationsTemplate(), page)
}

// serveRevokeInvitation revokes an invitation not used yet, once confirmed.
func (h *adminPageRoutes) serveRevokeInvitation(w http.ResponseWriter, r *http.Request, c *caller) error {
	list := h.AdminPath + "/invitations"
	ok, err := h.confirmed(w, r, c, list, "Revoke this invitation?",
		"Its link stops working at once; whoever has it cannot create an account with it.", "Revoke the invitation")
	if !ok {
		return err
	}
	if err := h.revokeInvitation(r.Context(), c, r.PathValue("id")); err != nil {
		ref, mistaken := formMistake(err)
		if !mistaken {
			return err
		}
		page, err := h.invitationsPage(r, c)
		if err != nil {
			return err
		}
		page.Error = sentence(ref.message)
		return h.render(w, r, ref.status, web.AdminInvitationsTemplate(), page)
	}
	return done(w, r, list, "invitation-revoked")
}
