package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/store"
)

func (c *state) userAdd(cmd *cobra.Command, name string, admin, fromStdin bool) error {
	if err := store.ValidateUsername(name); err != nil {
		return err
	}
	pw, err := newPasswordSource(cmd, fromStdin, name)
	if err != nil {
		return err
	}
	return c.withStore(cmd, func(ctx context.Context, s *store.Store) error {
		// Look first, so nobody types a password twice for a name that is taken.
		_, err := s.GetUserByName(ctx, name)
		switch {
		case err == nil:
			return userExists(name)
		case !errors.Is(err, store.ErrUserNotFound):
			return err
		}
		if existing, err := s.LookalikeOf(ctx, name); err != nil {
			return err
		} else if existing != "" {
			return userLooksLike(name, existing)
		}
		return c.withPassword(cmd, pw, func(ctx context.Context, password string) error {
			u, err := s.CreateUser(ctx, name, password, admin)
			var lookalike *store.LookalikeError
			if errors.As(err, &lookalike) {
				return userLooksLike(name, lookalike.Existing)
			}
			if errors.Is(err, store.ErrUserExists) {
				return userExists(name)
			}
			if err != nil {
				return err
			}
			kind, detail := "user", ""
			if u.IsAdmin {
				kind, detail = "admin user", "is_admin=true"
			}
			c.audit(ctx, "user.create", u.Username, detail)
			fmt.Fprintf(cmd.OutOrStdout(), "created %s %q\n", kind, u.Username)
			return nil
		})
	})
}

func (c *state) userPasswd(cmd *cobra.Command, name string, fromStdin bool) error {
	pw, err := newPasswordSource(cmd, fromStdin, name)
	if err != nil {
		return err
	}
	return c.withUser(cmd, name, func(_ context.Context, s *store.Store, u *store.User) error {
		return c.withPassword(cmd, pw, func(ctx context.Context, password string) error {
			// No token to keep: every session of the user ends.
			ended, err := s.ChangePassword(ctx, u.ID, password, "")
			if errors.Is(err, store.ErrUserNotFound) {
				return noUser(name)
			}
			if err != nil {
				return err
			}
			c.audit(ctx, "user.change", u.Username, "password")
			fmt.Fprintf(cmd.OutOrStdout(), "changed the password of %q and ended %s\n", u.Username, count(ended, "session"))
			return nil
		})
	})
}

func (c *state) userAdmin(cmd *cobra.Command, args []string) error {
	name, on := args[0], args[1] == "on"
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		if err := s.SetAdmin(ctx, u.ID, on); errors.Is(err, store.ErrUserNotFound) {
			return noUser(name)
		} else if err != nil {
			return err
		}
		c.audit(ctx, "user.change", u.Username, fmt.Sprintf("is_admin=%t", on))
		if on {
			fmt.Fprintf(cmd.OutOrStdout(), "%q is an admin\n", u.Username)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "%q is no longer an admin\n", u.Username)
		}
		return nil
	})
}

func (c *state) userDelete(cmd *cobra.Command, args []string) error {
	name := args[0]
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		// Deleting the user deletes their sessions too; ending them first is only
		// to count them. One made in between goes with the user all the same.
		ended, err := s.DeleteUserSessions(ctx, u.ID)
		if err != nil {
			return err
		}
		if err := s.DeleteUser(ctx, u.Username); errors.Is(err, store.ErrUserNotFound) {
			return noUser(name)
		} else if err != nil {
			return err
		}
		c.audit(ctx, "user.delete", u.Username, "")
		fmt.Fprintf(cmd.OutOrStdout(), "deleted user %q and ended %s\n", u.Username, count(ended, "session"))
		return nil
	})
}

func (c *state) userList(cmd *cobra.Command, _ []string) error {
	return c.withStore(cmd, func(ctx context.Context, s *store.Store) error {
		users, err := s.ListUsers(ctx)
		if err != nil {
			return err
		}
		if len(users) == 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "no users")
			return nil
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tADMIN\tEMAIL\tCREATED\tID")
		for _, u := range users {
			admin := "no"
			if u.IsAdmin {
				admin = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(u.Username), admin, emailCell(u), formatTime(u.CreatedAt), u.ID)
		}
		return tw.Flush()
	})
}

func noUser(name string) error     { return fmt.Errorf("no user %q", name) }
func userExists(name string) error { return fmt.Errorf("user %q already exists", name) }

func userLooksLike(name, existing string) error {
	return fmt.Errorf("%q looks like the name of the existing user %q: choose another name", name, existing)
}
