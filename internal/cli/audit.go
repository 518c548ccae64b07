package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/store"
)

// The audit trail on the command line: `audit` lists it, and every command
// that changes users, groups, tokens or identities records its change in
// it, as the admin API does, with the actor "command line".

// addAuditCommand adds `audit` to cmd.
func (c *state) addAuditCommand(cmd *cobra.Command) {
	var q store.AuditQuery
	var asJSON bool
	audit := &cobra.Command{
		Use:   "audit [--limit <n>] [--user <name>] [--target <t>] [--action <a>] [--json]",
		Short: "Lists the admin actions recorded in the audit trail",
		Long: `
Lists the latest admin actions, newest first: when, who made them (an
admin's username, "admin token", "command line" or "caddy admin endpoint"),
the action (user.create, user.delete, group.join, denied, ...), its target,
the HTTP status it was answered with ("-" from the command line) and the
client's address. --user keeps the actions of one actor, --target those
done to one user or group ("alice", or "alice → editors" for a membership),
--action those of one action. --json prints one JSON object a line.
Entries are kept for the audit_retention of the pg_session global option
(365 days by default).`,
		Args: cobra.NoArgs,
		RunE: c.run(func(cmd *cobra.Command, _ []string) error { return c.listAudit(cmd, q, asJSON) }),
	}
	audit.Flags().IntVar(&q.Limit, "limit", 50, "how many entries to list")
	audit.Flags().StringVar(&q.Actor, "user", "", "only the actions of this actor")
	audit.Flags().StringVar(&q.Target, "target", "", "only the actions on this target")
	audit.Flags().StringVar(&q.Action, "action", "", "only this action")
	audit.Flags().BoolVar(&asJSON, "json", false, "print one JSON object a line")
	cmd.AddCommand(audit)
}

func (c *state) listAudit(cmd *cobra.Command, q store.AuditQuery, asJSON bool) error {
	if q.Limit < 1 || q.Limit > store.MaxAuditLimit {
		return fmt.Errorf("--limit must be between 1 and %d", store.MaxAuditLimit)
	}
	return c.withStore(cmd, func(ctx context.Context, s *store.Store) error {
		entries, err := s.AuditLog(ctx, q)
		if err != nil {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			for _, e := range entries {
				if err := enc.Encode(e); err != nil {
					return err
				}
			}
			return nil
		}
		if len(entries) == 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "no admin actions recorded")
			return nil
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "WHEN\tACTOR\tACTION\tTARGET\tSTATUS\tFROM\tDETAIL")
		for _, e := range entries {
			status := "-"
			if e.Status != 0 {
				status = strconv.Itoa(e.Status)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", formatTime(e.At), printable(e.Actor), printable(e.Action),
				printable(e.Target), status, printable(e.Remote), printable(e.Detail))
		}
		return tw.Flush()
	})
}

// audit records a change the command made, after it made it: action names
// it as the admin API does ("user.delete"), target what it was done to,
// detail what changed (never a password, a token or a link). A failed
// record is said on stderr and does not fail the command, whose change is
// made.
func (c *state) audit(ctx context.Context, action, target, detail string) {
	if c.store == nil {
		return
	}
	err := c.store.RecordAudit(ctx, store.AuditEntry{Actor: store.ActorCommandLine, Action: action, Target: target, Detail: detail})
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(c.stderr, "warning: the change is made, but it could not be recorded in the audit trail: %v\n", err)
	}
}
