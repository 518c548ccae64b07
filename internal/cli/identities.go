package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/store"
)

// defaultInvitationLifetime is how long `identity allow` lets a first
// sign-in link unless --expires says otherwise: a standing permission
// would let whoever holds the address at the provider years later claim
// the account.
const defaultInvitationLifetime = "7d"

// addIdentityCommands adds `identity list|allow|unlink` to cmd.
func (c *state) addIdentityCommands(cmd *cobra.Command) {
	identity := &cobra.Command{
		Use:   "identity",
		Short: "Lists, allows and unlinks a user's identities at identity providers",
		RunE:  groupRunE,
	}
	cmd.AddCommand(identity)

	identity.AddCommand(&cobra.Command{
		Use:   "list <name>",
		Short: "Lists a user's linked identities and the sign-ins allowed to link",
		Long: `
Lists the user's identities at identity providers, by provider: those linked
(the provider's subject, the email it last said it verified, when the link
was made and last used) and those an admin allowed that no sign-in has used
yet (the email, and when the permission ends). Says on stderr when the user
has no password.`,
		Args: nameArgs,
		RunE: c.run(c.identityList),
	})

	var expires string
	allow := &cobra.Command{
		Use:   "allow <name> <provider> <email> [--expires <duration>|never]",
		Short: "Lets the first sign-in with a provider and a verified email link to a user",
		Long: `
Lets the first sign-in with the provider (as the identity_provider of the
pg_session global option names it) whose verified email is the one given,
compared regardless of case, link to the user, once: the link is then kept
by the provider's own name for the account (its subject), never by the
email, so a changed or recycled address cannot reach the user later.

--expires ends the permission after a duration (7d, 12h, 90m; default 7d),
or never. Allowing an email again replaces what it allowed before; 'identity
unlink' withdraws it.`,
		Args: identityAllowArgs,
		RunE: c.run(func(cmd *cobra.Command, args []string) error {
			return c.identityAllow(cmd, args[0], args[1], args[2], expires)
		}),
	}
	allow.Flags().StringVar(&expires, "expires", defaultInvitationLifetime,
		"end the permission after this long (7d, 12h, 90m) or never")
	identity.AddCommand(allow)

	identity.AddCommand(&cobra.Command{
		Use:   "unlink <name> <provider>",
		Short: "Unlinks a user's identity at a provider",
		Long: `
Unlinks the user's identity at the provider, takes the user out of the groups
that provider's groups claim put them in, and withdraws the permissions to
link the provider that 'identity allow' gave and no sign-in used. It is
refused when it would leave the user no way to sign in: no password, no
passkey and no other identity ('user passwd' gives one). The user's sessions
stay.`,
		Args: identityUnlinkArgs,
		RunE: c.run(func(cmd *cobra.Command, args []string) error { return c.identityUnlink(cmd, args[0], args[1]) }),
	})
}

// identityAllowArgs checks the arguments of `identity allow`: a user, a
// provider's name in the profile, an email.
func identityAllowArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return errors.New("missing the user name")
	case len(args) == 1:
		return errors.New("missing the provider after the user name")
	case len(args) == 2:
		return errors.New("missing the email after the provider")
	case len(args) > 3:
		return errors.New("too many arguments: give the user name, the provider, then the email")
	}
	return validProviderName(args[1])
}

// identityUnlinkArgs checks the arguments of `identity unlink`: a user,
// then a provider's name in the profile.
func identityUnlinkArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return errors.New("missing the user name")
	case len(args) == 1:
		return errors.New("missing the provider after the user name")
	case len(args) > 2:
		return errors.New("too many arguments: give the user name, then the provider")
	}
	return validProviderName(args[1])
}

// validProviderName is the profile's refusal of name, naming it; names
// are never lowercased, so what is stored is what the Caddyfile says.
func validProviderName(name string) error {
	if err := store.ValidProviderName(name); err != nil {
		return fmt.Errorf("%q is not a provider's name: %w", name, err)
	}
	return nil
}

func (c *state) identityList(cmd *cobra.Command, args []string) error {
	return c.withUser(cmd, args[0], func(ctx context.Context, s *store.Store, u *store.User) error {
		ids, err := s.Identities(ctx, u.ID)
		if err != nil {
			return err
		}
		invitations, err := s.IdentityInvitations(ctx, u.ID)
		if err != nil {
			return err
		}
		if !u.HasPassword {
			fmt.Fprintf(cmd.ErrOrStderr(), "%q has no password\n", u.Username)
		}
		if len(ids)+len(invitations) == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "no identities for %q\n", u.Username)
			return nil
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PROVIDER\tSTATUS\tSUBJECT\tEMAIL\tSINCE\tLAST USED\tEXPIRES")
		for _, id := range ids {
			fmt.Fprintf(tw, "%s\tlinked\t%s\t%s\t%s\t%s\t-\n", id.Provider, printable(id.Subject), printable(id.Email),
				formatTime(id.CreatedAt), formatTime(id.LastUsedAt))
		}
		for _, inv := range invitations {
			fmt.Fprintf(tw, "%s\tallowed\t-\t%s\t%s\t-\t%s\n", inv.Provider, printable(inv.Email), formatTime(inv.CreatedAt),
				expiry(inv.ExpiresAt))
		}
		return tw.Flush()
	})
}

// expiry shows when something ends, or never.
func expiry(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return formatTime(t)
}

func (c *state) identityAllow(cmd *cobra.Command, name, provider, email, expires string) error {
	var expiresAt time.Time
	if expires != "never" {
		d, err := store.ParseAPITokenLifetime(expires)
		if err != nil {
			return errors.New("invalid value for --expires: give a positive duration such as 7d, 12h or 90m, or never")
		}
		expiresAt = time.Now().Add(d)
	}
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		inv, err := s.AllowIdentity(ctx, store.IdentityInvitation{Provider: provider, Email: email, UserID: u.ID,
			ExpiresAt: expiresAt})
		switch {
		case errors.Is(err, store.ErrUserNotFound):
			return noUser(name)
		case errors.Is(err, store.ErrProviderLinked):
			return fmt.Errorf("%q has a %s identity already: see 'identity list %s'", u.Username, provider, u.Username)
		case err != nil:
			return err
		}
		c.audit(ctx, "identity.allow", u.Username, inv.Provider+" "+inv.Email)
		until := "with no expiry"
		if !inv.ExpiresAt.IsZero() {
			until = "until " + formatTime(inv.ExpiresAt)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "allowed the first sign-in with %s whose verified email is %s to link to %q, once, %s\n",
			inv.Provider, printable(inv.Email), u.Username, until)
		return nil
	})
}

func (c *state) identityUnlink(cmd *cobra.Command, name, provider string) error {
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		err := s.UnlinkIdentity(ctx, u.ID, provider)
		switch {
		case errors.Is(err, store.ErrUserNotFound):
			return noUser(name)
		case errors.Is(err, store.ErrLastSignInMethod):
			return fmt.Errorf("unlinking %s would leave %q no way to sign in: give them a password first ('user passwd %s')",
				provider, u.Username, u.Username)
		case err != nil && !errors.Is(err, store.ErrIdentityNotFound):
			return err
		}
		unlinked := err == nil
		withdrawn, err := s.WithdrawIdentityInvitations(ctx, u.ID, provider)
		if err != nil {
			return err
		}
		if unlinked || withdrawn > 0 {
			c.audit(ctx, "identity.unlink", u.Username, provider)
		}
		switch {
		case unlinked && withdrawn > 0:
			fmt.Fprintf(cmd.OutOrStdout(), "unlinked %s from %q and withdrew %s to link it\n", provider, u.Username,
				count(withdrawn, "permission"))
		case unlinked:
			fmt.Fprintf(cmd.OutOrStdout(), "unlinked %s from %q\n", provider, u.Username)
		case withdrawn > 0:
			fmt.Fprintf(cmd.OutOrStdout(), "withdrew %s to link %s to %q, which had none linked\n",
				count(withdrawn, "permission"), provider, u.Username)
		default:
			return fmt.Errorf("%q has no %s identity: see 'identity list %s'", u.Username, provider, u.Username)
		}
		return nil
	})
}
