package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/store"
)

// addEmailCommands adds `user email <name> <address>|--clear` to user.
func (c *state) addEmailCommands(user *cobra.Command) {
	var remove bool
	email := &cobra.Command{
		Use:   "email <name> <address> | email <name> --clear",
		Short: "Sets or clears a user's email address",
		Long: `
Sets a user's email address, as verified: whoever runs this vouches for it,
as an admin does through the admin API. The address is stored trimmed and
lower-cased, and is one user's: an address another user has is refused.
--clear removes the address. A password-reset link sent to another address
stops working.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return errors.New("missing the user name")
			case remove && len(args) > 1:
				return errors.New("give the user name alone with --clear")
			case !remove && len(args) == 1:
				return errors.New("missing the email address after the user name (or --clear)")
			case len(args) > 2:
				return errors.New("too many arguments: give the user name, then the address")
			}
			return nil
		},
		RunE: c.run(func(cmd *cobra.Command, args []string) error {
			address := ""
			if !remove {
				address = args[1]
			}
			return c.userEmail(cmd, args[0], address)
		}),
	}
	email.Flags().BoolVar(&remove, "clear", false, "remove the user's address")
	user.AddCommand(email)
}

func (c *state) userEmail(cmd *cobra.Command, name, address string) error {
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		err := s.SetEmail(ctx, u.ID, address, true)
		switch {
		case errors.Is(err, store.ErrEmailTaken):
			return fmt.Errorf("another user has the address %q", store.NormalizeEmail(address))
		case errors.Is(err, store.ErrUserNotFound):
			return noUser(name)
		case err != nil:
			return err
		}
		if address == "" {
			fmt.Fprintf(cmd.OutOrStdout(), "%q has no email address now\n", u.Username)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "%q has the email address %s\n", u.Username, printable(store.NormalizeEmail(address)))
		}
		return nil
	})
}

// emailCell is a user's address as `user list` shows it.
func emailCell(u store.User) string {
	switch {
	case u.Email == "":
		return "-"
	case !u.EmailVerified:
		return printable(u.Email) + " (unverified)"
	}
	return printable(u.Email)
}
