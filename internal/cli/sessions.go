package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/store"
)

func (c *state) sessionsList(cmd *cobra.Command, args []string) error {
	return c.withUser(cmd, args[0], func(ctx context.Context, s *store.Store, u *store.User) error {
		sessions, err := s.GetUserSessions(ctx, u.ID)
		if err != nil {
			return err
		}
		if len(sessions) == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "no live sessions for %q\n", u.Username)
			return nil
		}
		// The ID is the session's handle, which 'sessions revoke --id' takes;
		// the token's hash is never shown.
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tLAST SEEN\tEXPIRES\tIP\tUSER AGENT")
		for _, sess := range sessions {
			expires := sess.ExpiresAt
			if sess.IdleExpiresAt != nil && sess.IdleExpiresAt.Before(expires) {
				expires = *sess.IdleExpiresAt
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sess.Handle, formatTime(sess.CreatedAt), formatTime(sess.LastSeenAt),
				formatTime(expires), printable(sess.IP), printable(sess.UserAgent))
		}
		return tw.Flush()
	})
}

func (c *state) sessionsRevoke(cmd *cobra.Command, name, id string) error {
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		if id != "" {
			ended, err := s.DeleteUserSessionByHandle(ctx, u.ID, store.Handle(id))
			if err != nil {
				return err
			}
			if !ended {
				return fmt.Errorf("%q has no session %q: see 'sessions list %s'", u.Username, id, u.Username)
			}
			c.audit(ctx, "session.end", id, "of "+u.Username)
			fmt.Fprintf(cmd.OutOrStdout(), "ended session %s of %q\n", id, u.Username)
			return nil
		}
		ended, err := s.DeleteUserSessions(ctx, u.ID)
		if err != nil {
			return err
		}
		c.audit(ctx, "user.sessions_end", u.Username, "")
		fmt.Fprintf(cmd.OutOrStdout(), "ended %s of %q\n", count(ended, "session"), u.Username)
		return nil
	})
}
