package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/store"
)

// addTokenCommands adds `token add|list|revoke` to cmd.
func (c *state) addTokenCommands(cmd *cobra.Command) {
	token := &cobra.Command{
		Use:   "token",
		Short: "Creates, lists and revokes a user's API tokens",
		RunE:  groupRunE,
	}
	cmd.AddCommand(token)

	var expires string
	var paths []string
	var admin bool
	add := &cobra.Command{
		Use:   "add <name> <token name> [--expires <duration>] [--path <pattern>]... [--admin]",
		Short: "Creates an API token for a user and prints it once",
		Long: `
Creates an API token for a user's scripts and prints it on stdout, alone on
a line. It is shown this once: the database keeps only its hash. The token's
name (1-64 printable characters) is unique among the user's tokens.

--expires ends the token after a duration (30d, 12h, 90m); without it the
token does not expire. Each --path limits the token to a path pattern, as
Caddy's path matcher writes them (/api/*); without one it is not limited.
--admin lets the token use its user's admin rights, for as long as the user
is an admin; only an admin's token can have it.

A token survives a change of its user's password: revoke it with 'token
revoke'. Deleting the user ends their tokens.`,
		Args: tokenAddArgs,
		RunE: c.run(func(cmd *cobra.Command, args []string) error {
			return c.tokenAdd(cmd, args[0], args[1], expires, paths, admin)
		}),
	}
	add.Flags().StringVar(&expires, "expires", "", "end the token after this long (30d, 12h, 90m); default: never")
	add.Flags().StringArrayVar(&paths, "path", nil, "limit the token to this path pattern (repeatable)")
	add.Flags().BoolVar(&admin, "admin", false, "let the token use the user's admin rights")
	token.AddCommand(add)

	token.AddCommand(&cobra.Command{
		Use:   "list <name>",
		Short: "Lists a user's API tokens",
		Long: `
Lists a user's API tokens, newest first: the ID that 'token revoke' takes,
the name, when it was created, when it expires, when and from where it was
last used (recorded now and then, not at each request), the paths it is limited
to, and whether it may use admin rights. Tokens that expired within the last
week are listed too. The tokens themselves are never shown.`,
		Args: nameArgs,
		RunE: c.run(c.tokenList),
	})

	var all bool
	revoke := &cobra.Command{
		Use:   "revoke <name> <token ID or name> | <name> --all",
		Short: "Revokes one of a user's API tokens, or all with --all",
		Long: `
Revokes the user's API token with that ID (from 'token list') or name, or
every token of the user with --all. The token is refused at its next
request, on every Caddy server sharing the database.`,
		Args: func(cmd *cobra.Command, args []string) error { return tokenRevokeArgs(args, all) },
		RunE: c.run(func(cmd *cobra.Command, args []string) error {
			if all {
				return c.tokenRevokeAll(cmd, args[0])
			}
			return c.tokenRevoke(cmd, args[0], args[1])
		}),
	}
	revoke.Flags().BoolVar(&all, "all", false, "revoke every API token of the user")
	token.AddCommand(revoke)
}

// tokenAddArgs checks the arguments of `token add`: a user, then a token's name.
func tokenAddArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return errors.New("missing the user name")
	case len(args) == 1:
		return errors.New("missing the token's name after the user name")
	case len(args) > 2:
		return errors.New("too many arguments: give the user name, then the token's name")
	}
	return nil
}

// tokenRevokeArgs checks the arguments of `token revoke`: a user, then one
// token, or the user alone with --all.
func tokenRevokeArgs(args []string, all bool) error {
	switch {
	case len(args) == 0:
		return errors.New("missing the user name")
	case all && len(args) > 1:
		return errors.New("too many arguments: with --all give only the user name")
	case !all && len(args) == 1:
		return errors.New("missing the token's ID or name after the user name, or --all")
	case len(args) > 2:
		return errors.New("too many arguments: give the user name, then the token's ID or name")
	}
	return nil
}

func (c *state) tokenAdd(cmd *cobra.Command, name, tokenName, expires string, paths []string, admin bool) error {
	if err := store.ValidateAPITokenName(tokenName); err != nil {
		return err
	}
	if err := store.ValidateAPITokenPaths(paths); err != nil {
		return err
	}
	var expiresAt time.Time
	if expires != "" {
		d, err := store.ParseAPITokenLifetime(expires)
		if err != nil {
			return errors.New("invalid value for --expires: give a positive duration such as 30d, 12h or 90m")
		}
		expiresAt = time.Now().Add(d)
	}
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		token, t, err := s.CreateAPIToken(ctx, u.ID, tokenName, expiresAt, paths, admin)
		switch {
		case errors.Is(err, store.ErrUserNotFound):
			return noUser(name)
		case errors.Is(err, store.ErrTokenNameTaken):
			return fmt.Errorf("%q already has an API token named %q: see 'token list %s'", u.Username, tokenName, u.Username)
		case errors.Is(err, store.ErrNotAdmin):
			return fmt.Errorf("%q is not an admin: only an admin's token can have --admin", u.Username)
		case err != nil:
			return err
		}
		c.audit(ctx, "token.create", u.Username, fmt.Sprintf("%s (ID %s)", t.Name, t.Handle))
		fmt.Fprintf(cmd.ErrOrStderr(), "created API token %q (ID %s) for %q; it is shown only this once:\n",
			t.Name, t.Handle, u.Username)
		fmt.Fprintln(cmd.OutOrStdout(), token)
		return nil
	})
}

func (c *state) tokenList(cmd *cobra.Command, args []string) error {
	return c.withUser(cmd, args[0], func(ctx context.Context, s *store.Store, u *store.User) error {
		tokens, err := s.ListAPITokens(ctx, u.ID)
		if err != nil {
			return err
		}
		if len(tokens) == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "no API tokens for %q\n", u.Username)
			return nil
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED\tEXPIRES\tLAST USED\tFROM\tPATHS\tADMIN")
		for _, t := range tokens {
			expires, used, paths, admin := "never", "never", "all", "no"
			if !t.ExpiresAt.IsZero() {
				expires = formatTime(t.ExpiresAt)
			}
			if !t.LastUsedAt.IsZero() {
				used = formatTime(t.LastUsedAt)
			}
			if len(t.Paths) > 0 {
				// Paths hold no spaces, so one separates them unambiguously.
				paths = strings.Join(t.Paths, " ")
			}
			if t.AdminScope {
				admin = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Handle, printable(t.Name), formatTime(t.CreatedAt),
				expires, used, printable(t.LastUsedFrom), printable(paths), admin)
		}
		return tw.Flush()
	})
}

func (c *state) tokenRevoke(cmd *cobra.Command, name, which string) error {
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		tokens, err := s.ListAPITokens(ctx, u.ID)
		if err != nil {
			return err
		}
		// An ID wins over a name, so a token is always reachable by its ID.
		var found *store.APIToken
		for i := range tokens {
			if string(tokens[i].Handle) == which {
				found = &tokens[i]
			}
		}
		for i := range tokens {
			if found == nil && tokens[i].Name == which {
				found = &tokens[i]
			}
		}
		if found != nil {
			err = s.RevokeAPIToken(ctx, u.ID, found.Handle)
		}
		if found == nil || errors.Is(err, store.ErrTokenNotFound) {
			return fmt.Errorf("%q has no API token %q: see 'token list %s'", u.Username, which, u.Username)
		}
		if err != nil {
			return err
		}
		c.audit(ctx, "token.revoke", u.Username, fmt.Sprintf("%s (ID %s)", found.Name, found.Handle))
		fmt.Fprintf(cmd.OutOrStdout(), "revoked API token %q (ID %s) of %q\n", found.Name, found.Handle, u.Username)
		return nil
	})
}

func (c *state) tokenRevokeAll(cmd *cobra.Command, name string) error {
	return c.withUser(cmd, name, func(ctx context.Context, s *store.Store, u *store.User) error {
		n, err := s.RevokeAllAPITokens(ctx, u.ID)
		if err != nil {
			return err
		}
		c.audit(ctx, "token.revoke", u.Username, "all: "+count(n, "API token"))
		fmt.Fprintf(cmd.OutOrStdout(), "revoked %s of %q\n", count(n, "API token"), u.Username)
		return nil
	})
}
