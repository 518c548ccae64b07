package pgsession

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/pgsession/caddy-pgsession/migrations"
	"github.com/pgsession/caddy-pgsession/store"
)

// cliTimeout bounds each stretch of database work a command does (connecting
// and migrating, then the change itself), so an unreachable database fails the
// command instead of hanging it. Time spent at a password prompt is not counted.
const cliTimeout = 30 * time.Second

// cliDatabaseURLEnv is read when --database-url is not given; it is also what
// the pg_session app reads by default.
const cliDatabaseURLEnv = "DATABASE_URL"

const cliShort = "Manages pg_session users and sessions in PostgreSQL"

const cliLong = `
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

// pgSessionCommand is `caddy pg-session`, registered in caddymodule.go.
func pgSessionCommand() caddycmd.Command {
	return caddycmd.Command{
		Name:      "pg-session",
		Usage:     "<command> [--database-url <url>] [--schema <name>]",
		Short:     cliShort,
		Long:      cliLong,
		CobraFunc: configurePgSessionCommand,
	}
}

// newPgSessionCommand builds the pg-session command tree on its own, for tests
// and for embedding; caddy builds it through configurePgSessionCommand.
func newPgSessionCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "pg-session", Short: cliShort, Long: cliLong}
	configurePgSessionCommand(cmd)
	return cmd
}

// cliState is one command tree's flags and what it learned while running; each
// tree built by configurePgSessionCommand has its own.
type cliState struct {
	databaseURL string
	schema      string

	// secret is the database password once the URL is parsed; it is scrubbed
	// from every error the commands return, in case some error quotes it.
	secret string
}

// configurePgSessionCommand adds the flags and subcommands of pg-session to cmd.
func configurePgSessionCommand(cmd *cobra.Command) {
	c := &cliState{}
	cmd.SilenceUsage = true
	cmd.RunE = cliGroupRunE
	cmd.SetFlagErrorFunc(cliFlagError)
	cmd.PersistentFlags().StringVar(&c.databaseURL, "database-url", "",
		"PostgreSQL URL (default: the "+cliDatabaseURLEnv+" environment variable)")
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
		Short: "Adds, lists and deletes users and changes passwords",
		RunE:  cliGroupRunE,
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
		Args: cliNameAndNoPassword,
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
		Args: cliNameAndNoPassword,
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
		Args: cliNameAndOnOff,
		RunE: c.run(c.userAdmin),
	})
	user.AddCommand(&cobra.Command{
		Use:   "delete <name>",
		Short: "Deletes a user and their sessions",
		Args:  cliName,
		RunE:  c.run(c.userDelete),
	})
	user.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "Lists the users",
		Args:  cobra.NoArgs,
		RunE:  c.run(c.userList),
	})

	sessions := &cobra.Command{
		Use:   "sessions",
		Short: "Lists and ends a user's sessions",
		RunE:  cliGroupRunE,
	}
	cmd.AddCommand(sessions)
	sessions.AddCommand(&cobra.Command{
		Use:   "list <name>",
		Short: "Lists a user's live sessions",
		Args:  cliName,
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
		Args: cliName,
		RunE: c.run(func(cmd *cobra.Command, args []string) error {
			return c.sessionsRevoke(cmd, args[0], revokeID)
		}),
	}
	revoke.Flags().StringVar(&revokeID, "id", "", "end only the session with this ID (from 'sessions list')")
	sessions.AddCommand(revoke)
}

// cliGroupRunE runs a command that only groups others: without arguments it
// shows the help, with one it says that is no such command.
func cliGroupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
}

func cliName(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return errors.New("missing the user name")
	case len(args) > 1:
		return errors.New("too many arguments: give only the user name")
	}
	return nil
}

// cliNameAndNoPassword is cliName for the commands that set a password, where
// a second argument is most likely the password: it is refused, and not quoted.
// cliNameAndOnOff checks the arguments of `user admin`: a name, then on or off.
func cliNameAndOnOff(cmd *cobra.Command, args []string) error {
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

func cliNameAndNoPassword(cmd *cobra.Command, args []string) error {
	if len(args) > 1 {
		return errors.New("too many arguments: give only the user name; " +
			"a password is never taken from the command line, type it at the prompt or pass --password-stdin and write it on stdin")
	}
	return cliName(cmd, args)
}

// cliFlagNamePattern is what an unknown long flag must look like to be quoted
// back; anything else might be a mistyped password.
var cliFlagNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// cliFlagError rewrites pflag's errors so they never quote a flag's value or
// an odd-looking unknown flag, either of which could be a password
// (`--password-stdin=hunter2`, `-Secret123`).
func cliFlagError(cmd *cobra.Command, err error) error {
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
		if cliFlagNamePattern.MatchString(name) {
			return fmt.Errorf("unknown flag --%s", name)
		}
		return errors.New("unknown flag")
	}
	return err
}

// run wraps a command's function so its error never carries the database
// password.
func (c *cliState) run(f func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		if err == nil || c.secret == "" {
			return err
		}
		msg := err.Error()
		for _, s := range []string{c.secret, url.QueryEscape(c.secret), url.PathEscape(c.secret)} {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
		if msg == err.Error() {
			return err
		}
		return errors.New(msg)
	}
}

// open connects to the database and, if migrate is set, installs or upgrades
// the schema quietly. The caller closes the store's pool.
// cliOpened is a store with the pool the command opened for it.
type cliOpened struct {
	*store.Store
	pool *pgxpool.Pool
}

// Close closes the pool.
func (s cliOpened) Close() { s.pool.Close() }

func (c *cliState) open(cmd *cobra.Command, migrate bool) (cliOpened, error) {
	dbURL := c.databaseURL
	if dbURL == "" {
		dbURL = os.Getenv(cliDatabaseURLEnv)
	}
	if dbURL == "" {
		return cliOpened{}, errors.New("no database given: pass --database-url or set " + cliDatabaseURLEnv)
	}
	if err := migrations.ValidateSchema(c.schema); err != nil {
		return cliOpened{}, err
	}
	// Statements run unnamed, so the command works through a transaction
	// pooler too; it runs too few of them for preparing to pay.
	cfg, _, err := store.PoolConfig(dbURL, "caddy pg-session")
	if err != nil {
		return cliOpened{}, err
	}
	c.secret = cfg.ConnConfig.Password
	cfg.MaxConns = 2
	target := store.Target(cfg.ConnConfig)

	ctx, cancel := c.context(cmd)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return cliOpened{}, fmt.Errorf("connecting to the database at %s: %w", target, err)
	}
	s, err := store.New(pool, store.Options{Schema: c.schema})
	if err == nil {
		err = pool.Ping(ctx)
		if err != nil {
			err = fmt.Errorf("connecting to the database at %s: %w", target, err)
		}
	}
	if err == nil && migrate {
		if _, err = s.Migrate(ctx); err != nil {
			err = fmt.Errorf("installing the schema %q: %w", c.schema, err)
		}
	}
	if err != nil {
		pool.Close()
		return cliOpened{}, err
	}
	return cliOpened{Store: s, pool: pool}, nil
}

// context bounds one stretch of database work.
func (c *cliState) context(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, cliTimeout)
}

func (c *cliState) migrate(cmd *cobra.Command, _ []string) error {
	s, err := c.open(cmd, false)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := c.context(cmd)
	defer cancel()
	n, err := s.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("installing the schema %q: %w", c.schema, err)
	}
	if n == 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "applied 0 migrations to schema %q: it is up to date\n", c.schema)
	} else {
		fmt.Fprintf(cmd.OutOrStdout(), "applied %s to schema %q\n", cliCount(n, "migration"), c.schema)
	}
	return nil
}

func (c *cliState) userAdd(cmd *cobra.Command, name string, admin, fromStdin bool) error {
	if err := store.ValidateUsername(name); err != nil {
		return err
	}
	pw, err := cliNewPasswordSource(cmd, fromStdin, name)
	if err != nil {
		return err
	}
	s, err := c.open(cmd, true)
	if err != nil {
		return err
	}
	defer s.Close()

	// Look first, so nobody types a password twice for a name that is taken.
	ctx, cancel := c.context(cmd)
	_, err = s.GetUserByName(ctx, name)
	cancel()
	switch {
	case err == nil:
		return cliUserExists(name)
	case !errors.Is(err, store.ErrUserNotFound):
		return err
	}
	password, err := pw.get()
	if err != nil {
		return err
	}

	ctx, cancel = c.context(cmd)
	defer cancel()
	u, err := s.CreateUser(ctx, name, password, admin)
	if errors.Is(err, store.ErrUserExists) {
		return cliUserExists(name)
	}
	if err != nil {
		return err
	}
	kind := "user"
	if u.IsAdmin {
		kind = "admin user"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "created %s %q\n", kind, u.Username)
	return nil
}

func (c *cliState) userPasswd(cmd *cobra.Command, name string, fromStdin bool) error {
	pw, err := cliNewPasswordSource(cmd, fromStdin, name)
	if err != nil {
		return err
	}
	s, err := c.open(cmd, true)
	if err != nil {
		return err
	}
	defer s.Close()

	u, err := c.lookUp(cmd, s, name)
	if err != nil {
		return err
	}
	password, err := pw.get()
	if err != nil {
		return err
	}
	ctx, cancel := c.context(cmd)
	defer cancel()
	// No token to keep: every session of the user ends.
	ended, err := s.ChangePassword(ctx, u.ID, password, "")
	if errors.Is(err, store.ErrUserNotFound) {
		return cliNoUser(name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "changed the password of %q and ended %s\n", u.Username, cliCount(ended, "session"))
	return nil
}

func (c *cliState) userAdmin(cmd *cobra.Command, args []string) error {
	s, err := c.open(cmd, true)
	if err != nil {
		return err
	}
	defer s.Close()
	u, err := c.lookUp(cmd, s, args[0])
	if err != nil {
		return err
	}
	ctx, cancel := c.context(cmd)
	defer cancel()
	on := args[1] == "on"
	if err := s.SetAdmin(ctx, u.ID, on); errors.Is(err, store.ErrUserNotFound) {
		return cliNoUser(args[0])
	} else if err != nil {
		return err
	}
	if on {
		fmt.Fprintf(cmd.OutOrStdout(), "%q is an admin\n", u.Username)
	} else {
		fmt.Fprintf(cmd.OutOrStdout(), "%q is no longer an admin\n", u.Username)
	}
	return nil
}

func (c *cliState) userDelete(cmd *cobra.Command, args []string) error {
	s, err := c.open(cmd, true)
	if err != nil {
		return err
	}
	defer s.Close()
	u, err := c.lookUp(cmd, s, args[0])
	if err != nil {
		return err
	}
	ctx, cancel := c.context(cmd)
	defer cancel()
	// Deleting the user deletes their sessions too; ending them first is only
	// to count them. One made in between goes with the user all the same.
	ended, err := s.DeleteUserSessions(ctx, u.ID)
	if err != nil {
		return err
	}
	if err := s.DeleteUser(ctx, u.Username); errors.Is(err, store.ErrUserNotFound) {
		return cliNoUser(args[0])
	} else if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "deleted user %q and ended %s\n", u.Username, cliCount(ended, "session"))
	return nil
}

func (c *cliState) userList(cmd *cobra.Command, _ []string) error {
	s, err := c.open(cmd, true)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := c.context(cmd)
	defer cancel()
	users, err := s.ListUsers(ctx)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "no users")
		return nil
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tADMIN\tCREATED\tID")
	for _, u := range users {
		admin := "no"
		if u.IsAdmin {
			admin = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cliPrintable(u.Username), admin, cliTime(u.CreatedAt), u.ID)
	}
	return tw.Flush()
}

func (c *cliState) sessionsList(cmd *cobra.Command, args []string) error {
	s, err := c.open(cmd, true)
	if err != nil {
		return err
	}
	defer s.Close()
	u, err := c.lookUp(cmd, s, args[0])
	if err != nil {
		return err
	}
	ctx, cancel := c.context(cmd)
	defer cancel()
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sess.Handle, cliTime(sess.CreatedAt), cliTime(sess.LastSeenAt),
			cliTime(expires), cliPrintable(sess.IP), cliPrintable(sess.UserAgent))
	}
	return tw.Flush()
}

func (c *cliState) sessionsRevoke(cmd *cobra.Command, name, id string) error {
	s, err := c.open(cmd, true)
	if err != nil {
		return err
	}
	defer s.Close()
	u, err := c.lookUp(cmd, s, name)
	if err != nil {
		return err
	}
	ctx, cancel := c.context(cmd)
	defer cancel()
	if id != "" {
		ended, err := s.DeleteUserSessionByHandle(ctx, u.ID, store.Handle(id))
		if err != nil {
			return err
		}
		if !ended {
			return fmt.Errorf("%q has no session %q: see 'sessions list %s'", u.Username, id, u.Username)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "ended session %s of %q\n", id, u.Username)
		return nil
	}
	ended, err := s.DeleteUserSessions(ctx, u.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "ended %s of %q\n", cliCount(ended, "session"), u.Username)
	return nil
}

// lookUp finds a user by name, regardless of case.
func (c *cliState) lookUp(cmd *cobra.Command, s cliOpened, name string) (*store.User, error) {
	ctx, cancel := c.context(cmd)
	defer cancel()
	u, err := s.GetUserByName(ctx, name)
	if errors.Is(err, store.ErrUserNotFound) {
		return nil, cliNoUser(name)
	}
	return u, err
}

func cliNoUser(name string) error     { return fmt.Errorf("no user %q", name) }
func cliUserExists(name string) error { return fmt.Errorf("user %q already exists", name) }

// cliPasswordSource is where a new password comes from: a line of stdin, or
// the terminal. A password from stdin is read and checked at once, before any
// database work; one from the terminal only when asked for.
type cliPasswordSource struct {
	password string // read from stdin
	prompt   func() (string, error)
}

func (p *cliPasswordSource) get() (string, error) {
	if p.prompt != nil {
		return p.prompt()
	}
	return p.password, nil
}

func cliNewPasswordSource(cmd *cobra.Command, fromStdin bool, name string) (*cliPasswordSource, error) {
	in := cmd.InOrStdin()
	if fromStdin {
		pw, err := cliReadPasswordLine(in)
		if err != nil {
			return nil, err
		}
		return &cliPasswordSource{password: pw}, nil
	}
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, errors.New("stdin is not a terminal, so the password cannot be asked for: " +
			"pass --password-stdin and write the password as one line on stdin")
	}
	fd := int(f.Fd())
	return &cliPasswordSource{prompt: func() (string, error) {
		restore := cliRestoreTerminalOnInterrupt(fd, cmd.ErrOrStderr())
		defer restore()
		return cliPromptPassword(cmd.ErrOrStderr(), name, func() ([]byte, error) { return term.ReadPassword(fd) })
	}}, nil
}

// cliReadPasswordLine reads one line from r as the password, without its line
// ending (\n or \r\n), and checks it. It reads no more than the longest
// password allowed and its line ending, plus one byte to notice a longer one.
func cliReadPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, store.MaxPasswordLength+3)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	if line == "" {
		return "", errors.New("no password on stdin: write it as one line")
	}
	if trimmed, ok := strings.CutSuffix(line, "\n"); ok {
		line = strings.TrimSuffix(trimmed, "\r")
	}
	if err := store.ValidatePassword(line); err != nil {
		return "", err
	}
	return line, nil
}

// cliPromptPassword asks for a password twice through read, with the prompts
// on w, and checks it before asking the second time.
func cliPromptPassword(w io.Writer, name string, read func() ([]byte, error)) (string, error) {
	fmt.Fprintf(w, "Password for %q: ", name)
	first, err := read()
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if err := store.ValidatePassword(string(first)); err != nil {
		return "", err
	}
	fmt.Fprint(w, "Repeat the password: ")
	second, err := read()
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if !bytes.Equal(first, second) {
		return "", errors.New("the passwords do not match")
	}
	return string(first), nil
}

// cliRestoreTerminalOnInterrupt puts the terminal back in its state (echo on)
// and exits if Ctrl-C is pressed at a password prompt, which would otherwise
// leave the shell without echo. It returns the function that stops watching.
func cliRestoreTerminalOnInterrupt(fd int, w io.Writer) (stop func()) {
	state, err := term.GetState(fd)
	if err != nil {
		return func() {}
	}
	sig := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sig, os.Interrupt)
	go func() {
		select {
		case <-sig:
			_ = term.Restore(fd, state)
			fmt.Fprintln(w)
			os.Exit(130) // the shell's status for a command ended by SIGINT
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
	}
}

// cliCount is "1 session", "2 sessions".
func cliCount[N int | int64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func cliTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// cliPrintable makes text from the database safe to print in a table: control
// and formatting characters, which could move the cursor, recolour or reorder
// the terminal or break the columns (a User-Agent is whatever the browser
// sent), become '?', and empty text becomes "-".
func cliPrintable(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '?'
		}
		return r
	}, s)
}
