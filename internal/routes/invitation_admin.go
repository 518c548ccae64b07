package routes

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
)

// The admin API's invitations to create an account: list them, make one,
// revoke one. An invitation for an address is mailed when the site can
// send mail, and its link is then not shown to the admin; without mail,
// or without an address, the admin gets the link to hand on.

// invitationJSON is an invitation as the admin routes show it.
type invitationJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email,omitempty"`
	Groups    []string  `json:"groups"`
	Status    string    `json:"status"` // open, expired or used
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	UsedAt    time.Time `json:"used_at,omitzero"`
	UsedBy    string    `json:"used_by,omitempty"`
	URL       string    `json:"url,omitempty"`    // the link, when it was not mailed
	Mailed    bool      `json:"mailed,omitempty"` // the link went to Email
}

func toInvitationJSON(inv store.Invitation) invitationJSON {
	return invitationJSON{ID: inv.ID, Email: inv.Email, Groups: inv.Groups, Status: inv.Status(),
		CreatedBy: inv.CreatedByName, CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt, UsedAt: inv.UsedAt,
		UsedBy: inv.UsedByName}
}

// InvitationURL is the link of an invitation's token on a site whose
// login page is at loginURL (absolute, e.g. https://example.com/login).
func InvitationURL(loginURL, token string) string {
	return strings.TrimRight(loginURL, "/") + "/invitation?token=" + url.QueryEscape(token)
}

// GET {api}/admin/invitations lists the open and expired invitations, and
// with ?used=true the used ones too.
func (h *adminRoutes) serveAdminListInvitations(w http.ResponseWriter, r *http.Request, _ *caller) error {
	used := r.URL.Query().Get("used")
	if used != "" && used != "true" && used != "false" {
		return refuse(ReasonBadRequest, `Query parameter "used" is true or false`)
	}
	list, err := h.store.ListInvitations(r.Context(), used == "true")
	if err != nil {
		return storeUnavailable(err)
	}
	return writeJSONList(w, list, toInvitationJSON)
}

// newInvitationRequest is the body of POST {api}/admin/invitations.
type newInvitationRequest struct {
	Email     string   `json:"email"`
	Groups    []string `json:"groups"`
	ExpiresIn string   `json:"expires_in"` // a duration, e.g. "72h" or "7d"; default invitation_lifetime
	// LoginURL is the site's login page the link starts from; required
	// through Caddy's admin endpoint, whose Host is no site's.
	LoginURL string `json:"login_url"`
}

// POST {api}/admin/invitations makes an invitation (201).
func (h *adminRoutes) serveAdminCreateInvitation(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body newInvitationRequest
	if err := request.DecodeJSONObject(r.Body, &body, "email", "groups", "expires_in", "login_url"); err != nil {
		return badBody(err)
	}
	base, err := h.invitationBase(r, c, body.LoginURL)
	if err != nil {
		return err
	}
	ttl := h.InvitationLifetime
	if body.ExpiresIn != "" {
		d, err := caddy.ParseDuration(body.ExpiresIn)
		if err != nil {
			return refuse(ReasonBadRequest, `"expires_in" is a duration, such as "72h" or "7d"`)
		}
		ttl = d
	}
	out, err := h.createInvitation(r, c, store.Invitation{Email: body.Email, Groups: body.Groups}, ttl, base)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// createInvitation makes an invitation, for the admin API and the admin
// page: it mails the link to the invitation's address when the site can
// send mail, and otherwise hands it back, in URL, for the admin to pass on.
func (h *adminRoutes) createInvitation(r *http.Request, c *caller, inv store.Invitation, ttl time.Duration, base string) (invitationJSON, error) {
	if c.session != nil {
		inv.CreatedBy = c.session.User.ID
	}
	token, created, err := h.store.CreateInvitation(r.Context(), inv, ttl)
	var inputErr *store.InputError
	switch {
	case errors.As(err, &inputErr):
		return invitationJSON{}, badInput(inputErr)
	case errors.Is(err, store.ErrGroupNotFound):
		return invitationJSON{}, refuse(ReasonNoSuchGroup, err.Error())
	case errors.Is(err, store.ErrUserNotFound):
		// The admin was deleted while asking; the invitation is nobody's.
		inv.CreatedBy = ""
		token, created, err = h.store.CreateInvitation(r.Context(), inv, ttl)
	}
	if err != nil {
		return invitationJSON{}, storeUnavailable(err)
	}
	out := toInvitationJSON(*created)
	link := InvitationURL(base, token)
	if created.Email != "" && h.mail != nil {
		h.mail.Send("invitation", created.Email, h.invitationSubject(), h.invitationMessage(link, created))
		out.Mailed = true
	} else {
		out.URL = link
	}
	c.auditTarget(created.ID)
	c.auditDetail("email %q, groups %q, mailed %t", created.Email, created.Groups, out.Mailed)
	h.logger.Info("invitation created", zap.String("invitation", created.ID), zap.Strings("groups", created.Groups),
		zap.Bool("mailed", out.Mailed), adminName(c))
	return out, nil
}

// invitationSubject is the subject of an invitation's mail.
func (h *adminRoutes) invitationSubject() string {
	if h.SiteName != "" {
		return "Your invitation to " + h.SiteName
	}
	return "Your invitation to create an account"
}

// invitationMessage is the body of an invitation's mail: plain text, the
// link on a line of its own so that mail programs make it clickable whole.
func (h *adminRoutes) invitationMessage(link string, inv *store.Invitation) string {
	site := "this site"
	if h.SiteName != "" {
		site = h.SiteName
	}
	return "You have been invited to create an account on " + site + ".\n\n" +
		"Open this link to choose a username and a password:\n\n" + link + "\n\n" +
		"The link works once, until " + inv.ExpiresAt.UTC().Format("2 Jan 2006 15:04 UTC") + ". " +
		"If you did not expect it, ignore this message: nothing happens unless the link is opened and the form sent.\n"
}

// DELETE {api}/admin/invitations/{id} revokes an invitation not used yet.
func (h *adminRoutes) serveAdminRevokeInvitation(w http.ResponseWriter, r *http.Request, c *caller) error {
	id := r.PathValue("id")
	if err := h.revokeInvitation(r.Context(), c, id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "revoked": true})
	return nil
}

// revokeInvitation revokes an invitation not used yet.
func (h *adminRoutes) revokeInvitation(ctx context.Context, c *caller, id string) error {
	err := h.store.RevokeInvitation(ctx, id)
	switch {
	case errors.Is(err, store.ErrInvitationUnknown):
		return refuse(ReasonNoSuchInvitation, "No such invitation")
	case errors.Is(err, store.ErrInvitationUsed):
		return refuse(ReasonInvitationUsed, "That invitation was used already: delete the user it made instead")
	case err != nil:
		return storeUnavailable(err)
	}
	h.logger.Info("invitation revoked", zap.String("invitation", id), adminName(c))
	return nil
}

// invitationBase is the login page an invitation's link starts from: the
// request's own site, or login_url, which a request through Caddy's admin
// endpoint (whose Host is localhost:2019, no site's) must give.
func (h *adminRoutes) invitationBase(r *http.Request, c *caller, loginURL string) (string, error) {
	if loginURL == "" {
		if c.via != "" {
			return "", refuse(ReasonBadRequest, `through Caddy's admin endpoint, say where the site's login page is: "login_url": "https://example.com/login"`)
		}
		return requestScheme(r) + "://" + r.Host + h.LoginPath, nil
	}
	u, err := url.Parse(loginURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", refuse(ReasonBadRequest, `"login_url" is the absolute address of a login page, such as "https://example.com/login"`)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}
