package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/store"
)

// statsJSON is what `stats --json` prints.
type statsJSON struct {
	ActiveSessions  int64                `json:"active_sessions"`
	ExpiredSessions int64                `json:"expired_sessions"`
	CreatedToday    int64                `json:"created_today"`
	TopUsers        []store.UserSessions `json:"top_users"`
}

// maxTop bounds --top: the list is for a glance, not an export.
const maxTop = 1000

func (c *state) stats(cmd *cobra.Command, top int, asJSON bool) error {
	if top < 1 || top > maxTop {
		return fmt.Errorf("--top must be between 1 and %d", maxTop)
	}
	return c.withStore(cmd, func(ctx context.Context, s *store.Store) error {
		counts, err := s.CountSessions(ctx)
		if err != nil {
			return err
		}
		users, err := s.TopUsers(ctx, top)
		if err != nil {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(statsJSON{ActiveSessions: counts.Active, ExpiredSessions: counts.Expired,
				CreatedToday: counts.CreatedToday, TopUsers: append([]store.UserSessions{}, users...)})
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "active sessions\t%d\n", counts.Active)
		fmt.Fprintf(tw, "expired sessions, not yet cleaned up\t%d\n", counts.Expired)
		fmt.Fprintf(tw, "created today (since 00:00 UTC)\t%d\n", counts.CreatedToday)
		if len(users) > 0 {
			fmt.Fprintln(tw, "\nUSERNAME\tLIVE SESSIONS")
			for _, u := range users {
				fmt.Fprintf(tw, "%s\t%d\n", printable(u.Username), u.Sessions)
			}
		}
		return tw.Flush()
	})
}
