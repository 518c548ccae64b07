package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/store"
)

// defaultInviteExpiry is --expires when it is not given, the default of
// the invitation_lifetime option.
const defaultInviteExpiry = "7d"

// addInviteCommands adds `invite`, `invite list` and `invite revoke` to cmd.
func (c *state) addInviteCommands(cmd *cobra.Command) {
	var loginURL, email, expires string
	var groups []string
	invite := &cobra.Command{
		Use:   "invite --url <login page URL> [--email <address>] [--group <group>]... [--expires <duration>]",
		Short: "Makes an invitation to create an account and prints its link",
		Long: `
Makes a single-use invitation to create an account and prints its link on
stdout, alone on a line, to hand to the person invited: whoever opens it
chooses a username and a password (or signs in with an identity provider)
and is signed in to the new account, even with registration off. The link
is shown this once: the database keeps only its token's hash. The command
line sends no mail; an admin with the site's mail set up can have the site
mail it (POST {api_path}/admin/invitations).

--url is the site's login page as visitors reach it, such as
https://example.com/login: the link is its /invitation page. --email records
whom it is for, which the new account gets as its address. Each --group puts
the new user in that group, which must exist ('group add'). --expires ends
the link after a duration (default 7d, at most 366d).`,
		Args: cobra.NoArgs,
		RunE: c.run(func(cmd *cobra.Command, _ []string) error {
			return c.inviteCreate(cmd, loginURL, email, expires, groups)
		}),
	}
	invite.Flags().StringVar(&loginURL, "url", "", "the site's login page, e.g. https://example.com/login (required)")
	invite.Flags().StringVar(&email, "email", "", "whom the invitation is for")
	invite.Flags().StringArrayVar(&groups, "group", nil, "put the new user in this group (repeatable)")
	invite.Flags().StringVar(&expires, "expires", defaultInviteExpiry, "end the link after this long (72h, 7d)")
	cmd.AddCommand(invite)

	var all bool
	list := &cobra.Command{
		Use:   "list [--all]",
		Short: "Lists the invitations not used yet, or all with --all",
		Long: `
Lists the invitations, newest first: the ID that 'invite revoke' takes,
whether each is open, expired or used, whom it is for, its groups, who made
it, when it expires, and who used it. Used and expired invitations are
deleted 30 days on. The links are never shown.`,
		Args: cobra.NoArgs,
		RunE: c.run(func(cmd *cobra.Command, _ []string) error { return c.inviteList(cmd, all) }),
	}
	list.Flags().BoolVar(&all, "all", false, "list the used invitations too")
	invite.AddCommand(list)
	invite.AddCommand(&cobra.Command{
		Use:   "revoke <id>",
		Short: "Revokes an invitation not used yet",
		Long: `
Revokes the invitation with that ID (from 'invite list'): its link no longer
works, and a sign-in with an identity provider begun on it cannot finish.`,
		Args: cobra.ExactArgs(1),
		RunE: c.run(func(cmd *cobra.Command, args []string) error { return c.inviteRevoke(cmd, args[0]) }),
	})
}

func (c *state) inviteCreate(cmd *cobra.Command, loginURL, email, expires string, groups []string) error {
	u, err := url.Parse(loginURL)
	if loginURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("--url must be the site's login page as visitors reach it, such as https://example.com/login")
	}
	ttl, err := caddy.ParseDuration(expires)
	if err != nil || ttl <= 0 {
		return fmt.Errorf("--expires: %q is not a positive duration such as 72h or 7d", expires)
	}
	for _, g := range groups {
		if err := validGroupName(g); err != nil {
			return err
		}
	}
	return c.withStore(cmd, func(ctx context.Context, s *store.Store) error {
		token, inv, err := s.CreateInvitation(ctx, store.Invitation{Email: email, Groups: groups}, ttl)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), strings.TrimRight(loginURL, "/")+"/invitation?token="+url.QueryEscape(token))
		fmt.Fprintf(cmd.ErrOrStderr(), "invitation %s works once, until %s\n", inv.ID, formatTime(inv.ExpiresAt))
		return nil
	})
}

func (c *state) inviteList(cmd *cobra.Command, all bool) error {
	return c.withStore(cmd, func(ctx context.Context, s *store.Store) error {
		list, err := s.ListInvitations(ctx, all)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "no invitations")
			return nil
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tEMAIL\tGROUPS\tCREATED BY\tEXPIRES\tUSED BY")
		for _, inv := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", inv.ID, inv.Status(), printable(inv.Email),
				printable(strings.Join(inv.Groups, ",")), printable(inv.CreatedByName),
				formatTime(inv.ExpiresAt), printable(inv.UsedByName))
		}
		return tw.Flush()
	})
}

func (c *state) inviteRevoke(cmd *cobra.Command, id string) error {
	return c.withStore(cmd, func(ctx context.Context, s *store.Store) error {
		switch err := s.RevokeInvitation(ctx, id); {
		case errors.Is(err, store.ErrInvitationUnknown):
			return fmt.Errorf("no invitation has the ID %q", printable(id))
		case errors.Is(err, store.ErrInvitationUsed):
			return errors.New("that invitation was used already: delete the user it made instead")
		case err != nil:
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "revoked invitation %s\n", id)
		return nil
	})
}
