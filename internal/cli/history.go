package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/store"
)

// userHistory prints a user's latest limit sign-in attempts, newest first.
func (c *state) userHistory(cmd *cobra.Command, name string, limit int) error {
	if limit < 1 {
		return errors.New("--limit must be a positive whole number")
	}
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		signIns, err := s.SignInHistory(ctx, u.ID, limit)
		if err != nil {
			return err
		}
		if len(signIns) == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "no sign-ins recorded for %q\n", u.Username)
			return nil
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tOUTCOME\tFACTOR\tIP\tUSER AGENT")
		for _, si := range signIns {
			// FACTOR is what the attempt checked (password, totp, recovery_code,
			// passkey), as the API's "factor" says; "-" when it was refused first.
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", formatTime(si.At), si.Outcome, printable(si.Factor),
				printable(si.IP), printable(si.UserAgent))
		}
		return tw.Flush()
	})
}
