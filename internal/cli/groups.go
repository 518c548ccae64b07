package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/store"
)

// addGroupCommands adds `group add|delete|list` to cmd and `user
// groups|join|leave` to user.
func (c *state) addGroupCommands(cmd, user *cobra.Command) {
	group := &cobra.Command{
		Use:   "group",
		Short: "Adds, lists and deletes groups of users",
		RunE:  groupRunE,
	}
	cmd.AddCommand(group)
	group.AddCommand(&cobra.Command{
		Use:   "add <group>",
		Short: "Creates a group",
		Long: `
Creates a group with no members; 'user join' puts users in it. A group name
is 1 to 64 characters, each a lowercase letter a-z, a digit, '-', '_' or '.',
the first a letter or a digit. Names are taken as they are written: a name
outside that profile is refused, never lowercased.`,
		Args: groupNameArgs,
		RunE: c.run(c.groupAdd),
	})
	group.AddCommand(&cobra.Command{
		Use:   "delete <group>",
		Short: "Deletes a group and takes its members out of it",
		Long: `
Deletes a group. Its members stay users, in their other groups; the change
holds from each of their sessions' next request, on every Caddy server
sharing the database.`,
		Args: groupNameArgs,
		RunE: c.run(c.groupDelete),
	})
	group.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "Lists the groups and how many members each has",
		Args:  cobra.NoArgs,
		RunE:  c.run(c.groupList),
	})

	user.AddCommand(&cobra.Command{
		Use:   "groups <name>",
		Short: "Lists the groups a user is in",
		Args:  nameArgs,
		RunE:  c.run(c.userGroups),
	})
	user.AddCommand(&cobra.Command{
		Use:   "join <name> <group>...",
		Short: "Puts a user in groups",
		Long: `
Puts a user in each of the groups, which must exist ('group add'); groups
the user is already in stay as they are. When one group does not exist,
nothing changes. The change holds from each of the user's sessions' next
request, on every Caddy server sharing the database.`,
		Args: nameAndGroupsArgs,
		RunE: c.run(func(cmd *cobra.Command, args []string) error {
			return c.changeGroups(cmd, args[0], args[1:], "group.join", (*store.Store).AddToGroups)
		}),
	})
	user.AddCommand(&cobra.Command{
		Use:   "leave <name> <group>...",
		Short: "Takes a user out of groups",
		Long: `
Takes a user out of each of the groups; a group the user is not in is no
error, one that does not exist is, and then nothing changes. The change
holds from each of the user's sessions' next request, on every Caddy server
sharing the database.`,
		Args: nameAndGroupsArgs,
		RunE: c.run(func(cmd *cobra.Command, args []string) error {
			return c.changeGroups(cmd, args[0], args[1:], "group.leave", (*store.Store).RemoveFromGroups)
		}),
	})
}

func (c *state) groupAdd(cmd *cobra.Command, args []string) error {
	name := args[0]
	return c.withStore(cmd, func(ctx context.Context, s *store.Store) error {
		g, err := s.CreateGroup(ctx, name)
		if errors.Is(err, store.ErrGroupExists) {
			return fmt.Errorf("group %q already exists", name)
		}
		if err != nil {
			return err
		}
		c.audit(ctx, "group.create", g.Name, "")
		fmt.Fprintf(cmd.OutOrStdout(), "created group %q\n", g.Name)
		return nil
	})
}

func (c *state) groupDelete(cmd *cobra.Command, args []string) error {
	name := args[0]
	return c.withStore(cmd, func(ctx context.Context, s *store.Store) error {
		members, err := s.DeleteGroup(ctx, name)
		if err != nil {
			return err
		}
		c.audit(ctx, "group.delete", name, "")
		fmt.Fprintf(cmd.OutOrStdout(), "deleted group %q, which had %s\n", name, count(members, "member"))
		return nil
	})
}

func (c *state) groupList(cmd *cobra.Command, _ []string) error {
	return c.withStore(cmd, func(ctx context.Context, s *store.Store) error {
		groups, err := s.ListGroups(ctx)
		if err != nil {
			return err
		}
		if len(groups) == 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "no groups")
			return nil
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "GROUP\tMEMBERS")
		for _, g := range groups {
			fmt.Fprintf(tw, "%s\t%d\n", printable(g.Name), g.Members)
		}
		return tw.Flush()
	})
}

// userGroups prints a user's groups one a line, for a person and a script
// alike.
func (c *state) userGroups(cmd *cobra.Command, args []string) error {
	return c.withUser(cmd, args[0], func(ctx context.Context, s *store.Store, u *store.User) error {
		if len(u.Groups) == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "no groups for %q\n", u.Username)
			return nil
		}
		for _, g := range u.Groups {
			fmt.Fprintln(cmd.OutOrStdout(), printable(g))
		}
		return nil
	})
}

// changeGroups joins or leaves groups with change, then says which groups
// the user is in, which reads the same however often it is run.
func (c *state) changeGroups(cmd *cobra.Command, name string, groups []string, action string,
	change func(*store.Store, context.Context, store.UserID, ...string) error) error {
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		err := change(s, ctx, u.ID, groups...)
		if errors.Is(err, store.ErrUserNotFound) {
			return noUser(name)
		}
		if err != nil {
			return err
		}
		for _, g := range groups {
			c.audit(ctx, action, u.Username+" → "+g, "")
		}
		now, err := s.UserGroups(ctx, u.ID)
		if errors.Is(err, store.ErrUserNotFound) {
			return noUser(name)
		}
		if err != nil {
			return err
		}
		if len(now) == 0 {
			fmt.Fprintf(cmd.OutOrStdout(), "%q is in no group\n", u.Username)
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%q is in %s\n", u.Username, printable(strings.Join(now, ", ")))
		return nil
	})
}

// groupNameArgs checks the arguments of the commands on one group: its
// name alone, in the profile, before any database is opened.
func groupNameArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return errors.New("missing the group name")
	case len(args) > 1:
		return errors.New("too many arguments: give only the group name")
	}
	return validGroupName(args[0])
}

// nameAndGroupsArgs checks the arguments of `user join` and `user leave`: a
// user's name, then one or more group names in the profile.
func nameAndGroupsArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return errors.New("missing the user name")
	case len(args) == 1:
		return errors.New("missing the group names after the user name")
	}
	for _, g := range args[1:] {
		if err := validGroupName(g); err != nil {
			return err
		}
	}
	return nil
}

// validGroupName is the profile's refusal of name, naming it, since a
// command may be given several; names are never lowercased or trimmed, so
// what a site's rules see is what was typed.
func validGroupName(name string) error {
	if err := store.ValidGroupName(name); err != nil {
		return fmt.Errorf("%q is not a group name: %w", name, err)
	}
	return nil
}
