// Package cli is the `caddy pg-session` command: it manages the users and
// sessions of the pg_session plugin directly in PostgreSQL, without a running
// Caddy. The plugin's root package registers it with Caddy.
package cli

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pgsession/caddy-pgsession/migrations"
	"github.com/pgsession/caddy-pgsession/store"
)

// timeout bounds each stretch of database work a command does (connecting
// and migrating, then the change itself), so an unreachable database fails the
// command instead of hanging it. Time spent at a password prompt is not counted.
const timeout = 30 * time.Second

// databaseURLEnv is read when --database-url is not given; it is also what
// the pg_session app reads by default.
const databaseURLEnv = "DATABASE_URL"

const short = "Manages pg_session users and sessions in PostgreSQL"

const long = `
Manages the users and sessions of the pg_session plugin directly in its
PostgreSQL database, without a running Caddy.

The database is given by --database-url or else the DATABASE_URL environment
variable (postgres://user:password@host:5432/database); --database-url shows
its password in the process list, so prefer DATABASE_URL. --schema names the
schema that holds the tables (default pgsession) and must match the schema
of the pg_session global option.

Every command installs or upgrades the schema first, so an empty database
needs no preparation: 'user add' works on it straight away.

Passwords are never taken from the command line. They are asked for twice
on the terminal, without echo, or read as one line from stdin with
--password-stdin:

  printf '%s\n' "$PASSWORD" | caddy pg-session user add alice --password-stdin
`

// Command is `caddy pg-session`, for caddycmd.RegisterCommand.
func Command() caddycmd.Command {
	return caddycmd.Command{
		Name:      "pg-session",
		Usage:     "<command> [--database-url <url>] [--schema <name>]",
		Short:     short,
		Long:      long,
		CobraFunc: configure,
	}
}

// newCommand builds the pg-session command tree on its own, for tests; caddy
// builds it through configure.
func newCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "pg-session", Short: short, Long: long}
	configure(cmd)
	return cmd
}

// state is one command tree's flags and what it learned while running; each
// tree built by configure has its own.
type state struct {
	databaseURL string
	schema      string

	// secret is the database password once the URL is parsed; it is scrubbed
	// from every error the commands return, in case some error quotes it.
	secret string
	// applied is how many migrations opening the database applied, which only
	// the migrate command reports.
	applied int
	// store and stderr are the opened store and the command's stderr, for
	// recording a change in the audit trail (audit.go).
	store  *store.Store
	stderr io.Writer
}

// configure adds the flags and subcommands of pg-session to cmd.
func configure(cmd *cobra.Command) {
	c := &state{}
	cmd.SilenceUsage = true
	cmd.RunE = groupRunE
	cmd.SetFlagErrorFunc(flagError)
	cmd.PersistentFlags().StringVar(&c.databaseURL, "database-url", "",
		"PostgreSQL URL (default: the "+databaseURLEnv+" environment variable)")
	cmd.PersistentFlags().StringVar(&c.schema, "schema", migrations.DefaultSchema,
		"PostgreSQL schema of the plugin's tables")

	cmd.AddCommand(&cobra.Command{
		Use:   "migrate",
		Short: "Installs or upgrades the database schema",
		Long: `
Installs the pg_session tables in the schema, or applies the migrations it
lacks, and prints how many were applied. Caddy does the same when it starts,
and every other pg-session command does it quietly, so running this by hand
is only needed to prepare a database ahead of time.`,
		Args: cobra.NoArgs,
		RunE: c.run(c.migrate),
	})

	user := &cobra.Command{
		Use:   "user",
		Short: "Adds, lists and deletes users, and changes their passwords and groups",
		RunE:  groupRunE,
	}
	cmd.AddCommand(user)

	var admin, addFromStdin bool
	add := &cobra.Command{
		Use:   "add <name> [--admin] [--password-stdin]",
		Short: "Creates a user",
		Long: `
Creates a user. The password is asked for twice on the terminal, or read as
one line from stdin with --password-stdin; it is never taken from the command
line. Names are unique regardless of case.`,
		Args: nameAndNoPasswordArgs,
		RunE: c.run(func(cmd *cobra.Command, args []string) error {
			return c.userAdd(cmd, args[0], admin, addFromStdin)
		}),
	}
	add.Flags().BoolVar(&admin, "admin", false, "make the user an administrator")
	add.Flags().BoolVar(&addFromStdin, "password-stdin", false, "read the password as one line from stdin")
	user.AddCommand(add)

	var passwdFromStdin bool
	passwd := &cobra.Command{
		Use:   "passwd <name> [--password-stdin]",
		Short: "Changes a user's password and ends all their sessions",
		Long: `
Changes the password of a user and ends every session of theirs, so whoever
knew the old password is logged out everywhere. The password is asked for
twice on the terminal, or read as one line from stdin with --password-stdin.`,
		Args: nameAndNoPasswordArgs,
		RunE: c.run(func(cmd *cobra.Command, args []string) error {
			return c.userPasswd(cmd, args[0], passwdFromStdin)
		}),
	}
	passwd.Flags().BoolVar(&passwdFromStdin, "password-stdin", false, "read the password as one line from stdin")
	user.AddCommand(passwd)

	user.AddCommand(&cobra.Command{
		Use:   "admin <name> on|off",
		Short: "Grants or removes a user's admin rights",
		Long: `
Grants (on) or removes (off) a user's admin rights: the admin routes under
{api_path}/admin/ with their session. The change holds from each of the
user's sessions' next request, on every Caddy server sharing the database.`,
		Args: nameAndOnOffArgs,
		RunE: c.run(c.userAdmin),
	})
	user.AddCommand(&cobra.Command{
		Use:   "delete <name>",
		Short: "Deletes a user and their sessions",
		Args:  nameArgs,
		RunE:  c.run(c.userDelete),
	})
	user.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "Lists the users",
		Args:  cobra.NoArgs,
		RunE:  c.run(c.userList),
	})
	user.AddCommand(&cobra.Command{
		Use:   "reset-2fa <name>",
		Short: "Removes a user's second factors and ends their sessions",
		Long: `
Removes a user's second factors (their authenticator app and recovery
codes), and the sign-ins waiting for a code, and ends every session of
theirs: for someone who lost their phone and their recovery codes. They sign
in with their password alone next time, and can set up a new authenticator
on the account page (under second_factor required, they must).`,
		Args: nameArgs,
		RunE: c.run(c.userReset2FA),
	})
	var historyLimit int
	history := &cobra.Command{
		Use:   "history <name> [--limit <n>]",
		Short: "Lists a user's latest sign-in attempts",
		Long: `
Lists a user's latest attempts to sign in, newest first: when, how each
ended (success, failure, throttled or second_factor_required), the factor
it checked (password, totp, recovery_code or passkey), the client's address
and user agent.
Attempts are kept for the history_retention of the pg_session global option
(90 days by default).`,
		Args: nameArgs,
		RunE: c.run(func(cmd *cobra.Command, args []string) error {
			return c.userHistory(cmd, args[0], historyLimit)
		}),
	}
	history.Flags().IntVar(&historyLimit, "limit", 50, "how many attempts to list")
	user.AddCommand(history)

	c.addGroupCommands(cmd, user)
	c.addEmailCommands(user)

	sessions := &cobra.Command{
		Use:   "sessions",
		Short: "Lists and ends a user's sessions",
		RunE:  groupRunE,
	}
	cmd.AddCommand(sessions)
	sessions.AddCommand(&cobra.Command{
		Use:   "list <name>",
		Short: "Lists a user's live sessions",
		Args:  nameArgs,
		RunE:  c.run(c.sessionsList),
	})
	var revokeID string
	revoke := &cobra.Command{
		Use:   "revoke <name> [--id <session id>]",
		Short: "Ends all of a user's sessions, or one with --id",
		Long: `
Ends every session of a user, or with --id only the one whose ID
'sessions list' shows. The user is logged out at their next request, on
every Caddy server sharing the database.`,
		Args: nameArgs,
		RunE: c.run(func(cmd *cobra.Command, args []string) error {
			return c.sessionsRevoke(cmd, args[0], revokeID)
		}),
	}
	revoke.Flags().StringVar(&revokeID, "id", "", "end only the session with this ID (from 'sessions list')")
	sessions.AddCommand(revoke)
	c.addTokenCommands(cmd)
	c.addIdentityCommands(cmd)
	c.addCheckAccessCommand(cmd)
	c.addInviteCommands(cmd)
	c.addAuditCommand(cmd)

	cmd.AddCommand(&cobra.Command{
		Use:   "secrets-key",
		Short: "Prints a new random key for the secrets_key option",
		Long: `
Prints 32 random bytes, base64url-encoded, fit for the secrets_key option of
the pg_session global option, which encrypts the TOTP secrets in the
database. Keep it out of the Caddyfile, e.g. secrets_key
{env.PGSESSION_SECRETS_KEY}: whoever has it and a copy of the database can
read every authenticator secret. Changing it makes every stored secret
unreadable, so users must set up their authenticator again.`,
		Args: cobra.NoArgs,
		RunE: secretsKey,
	})

	var top int
	var statsJSON bool
	stats := &cobra.Command{
		Use:   "stats [--top N] [--json]",
		Short: "Shows how many sessions there are and who has the most",
		Long: `
Shows the numbers to watch: live sessions, sessions that have ended but are
still in the table until the next cleanup round, sessions created today, and
the users with the most live sessions. "Today" is the UTC day, from
00:00 UTC, wherever the command runs, and only sessions still in the table
count: a logout, a revocation or a cleanup round deletes a session. --json
prints one object: active_sessions, expired_sessions, created_today, and
top_users, a list of {username, sessions}.`,
		Args: cobra.NoArgs,
		RunE: c.run(func(cmd *cobra.Command, _ []string) error { return c.stats(cmd, top, statsJSON) }),
	}
	stats.Flags().IntVar(&top, "top", 10, "how many users to list, by live sessions")
	stats.Flags().BoolVar(&statsJSON, "json", false, "print JSON")
	cmd.AddCommand(stats)
}

// groupRunE runs a command that only groups others: without arguments it
// shows the help, with one it says that is no such command.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
}

// nameArgs checks the arguments of the commands on one user: the name alone.
func nameArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return errors.New("missing the user name")
	case len(args) > 1:
		return errors.New("too many arguments: give only the user name")
	}
	return nil
}

// nameAndNoPasswordArgs is nameArgs for the commands that set a password,
// where a second argument is most likely the password: it is refused, and
// not quoted.
func nameAndNoPasswordArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 1 {
		return errors.New("too many arguments: give only the user name; " +
			"a password is never taken from the command line, type it at the prompt or pass --password-stdin and write it on stdin")
	}
	return nameArgs(cmd, args)
}

// nameAndOnOffArgs checks the arguments of `user admin`: a name, then on or off.
func nameAndOnOffArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return errors.New("missing the user name")
	case len(args) == 1:
		return errors.New("missing on or off after the user name")
	case len(args) > 2:
		return errors.New("too many arguments: give the user name, then on or off")
	case args[1] != "on" && args[1] != "off":
		return fmt.Errorf("%q is neither on nor off", args[1])
	}
	return nil
}

// flagNamePattern is what an unknown long flag must look like to be quoted
// back; anything else might be a mistyped password.
var flagNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// flagError rewrites pflag's errors so they never quote a flag's value or
// an odd-looking unknown flag, either of which could be a password
// (`--password-stdin=hunter2`, `-Secret123`).
func flagError(cmd *cobra.Command, err error) error {
	var invalid *pflag.InvalidValueError
	var notExist *pflag.NotExistError
	switch {
	case errors.As(err, &invalid):
		if invalid.GetFlag().Value.Type() == "bool" {
			return fmt.Errorf("--%s takes no value", invalid.GetFlag().Name)
		}
		return fmt.Errorf("invalid value for --%s", invalid.GetFlag().Name)
	case errors.As(err, &notExist):
		name := notExist.GetSpecifiedName()
		if notExist.GetSpecifiedShortnames() != "" {
			return fmt.Errorf("unknown flag -%s", string([]rune(name)[:1]))
		}
		if flagNamePattern.MatchString(name) {
			return fmt.Errorf("unknown flag --%s", name)
		}
		return errors.New("unknown flag")
	}
	return err
}
