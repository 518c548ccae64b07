package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/internal/access"
	"github.com/pgsession/caddy-pgsession/store"
)

const checkAccessLong = `
Says what the access rules of a config's pg_session sites make of one
request: whether <user> may reach <path> with <method>, by which rule and
why, as the gate decides it for a session of theirs. The config is read as
'caddy adapt' reads it, as a Caddyfile, or as JSON when the file ends in
.json, or with the adapter --adapter names; the user's groups and admin
rights come from the database.

Each pg_session handler of the config is a site, named by the hosts of the
routes around it ("every host" when they match any), and each is listed, or
with --host only those serving that host. Under it one line: "public" when
one of its public patterns serves the path without a session; else
"allowed", "refused (403)" or "needs a second factor (step-up)", and the
sentence that says which rule decided and why. --second-factor decides as
for a session in which the user has given a second factor. The plugin's own
routes (login, account, the JSON API) are not subject to rules, and are not
told apart here.

Exit status: 0 when the request is allowed or public on every site listed,
1 when it is refused or needs a second factor on any, 2 when the command
could not decide: a usage error, a config that does not adapt, an unknown
user, no database. Scripts can test it:

  caddy pg-session check-access alice GET /internal/report --config Caddyfile
`

// PublicMatcher makes a matcher of public patterns, the gate's own, so that
// check-access calls public exactly what the gate serves without a session.
// The plugin's root package sets it where it registers the command: it
// imports this package, so this package cannot import it.
var PublicMatcher func(patterns []string) (func(*http.Request) (bool, error), error)

// checkAccessFlags are the flags of check-access.
type checkAccessFlags struct {
	config, adapter, host string
	secondFactor          bool
}

// addCheckAccessCommand adds `check-access` to cmd.
func (c *state) addCheckAccessCommand(cmd *cobra.Command) {
	var f checkAccessFlags
	check := &cobra.Command{
		Use:   "check-access <user> <method> <path> --config <file> [--adapter <name>] [--host <host>] [--second-factor]",
		Short: "Says whether a user may reach a path under a config's access rules, and why",
		Long:  checkAccessLong,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := checkAccessArgs(args, f); err != nil {
				return exitWith(cmd, exitTrouble, err)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var refused int
			err := c.run(func(cmd *cobra.Command, args []string) (err error) {
				refused, err = c.checkAccess(cmd, args, f)
				return err
			})(cmd, args)
			switch {
			case err != nil:
				return exitWith(cmd, exitTrouble, err)
			case refused > 0:
				// The output said it; an "Error:" line would only repeat it.
				cmd.SilenceErrors = true
				return exitWith(cmd, exitRefused, fmt.Errorf("refused on %s", count(refused, "site")))
			}
			return nil
		},
	}
	// A flag error is a usage error too, so it exits with 2 like the rest.
	check.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return exitWith(cmd, exitTrouble, flagError(cmd, err))
	})
	check.Flags().StringVarP(&f.config, "config", "c", "", "the config file, as for caddy adapt (required)")
	check.Flags().StringVarP(&f.adapter, "adapter", "a", "",
		"the config adapter (default: caddyfile, or none for a file ending in .json)")
	check.Flags().StringVar(&f.host, "host", "", "the request's host: list only the sites serving it")
	check.Flags().BoolVar(&f.secondFactor, "second-factor", false,
		"decide as for a session that has given a second factor")
	cmd.AddCommand(check)
}

// The exit statuses of check-access besides 0, as grep and diff use them:
// 1 is the answer no, 2 is no answer.
const (
	exitRefused = 1
	exitTrouble = 2
)

// exitError is an error of check-access and the status the command exits
// with.
type exitError struct {
	status int
	err    error
	// caddy is caddycmd's own exit error with the same status: caddycmd.Main
	// exits with 1 on any other error, and finds this one through Unwrap.
	caddy error
}

func (e *exitError) Error() string   { return e.err.Error() }
func (e *exitError) Unwrap() []error { return []error{e.err, e.caddy} }

// exitWith makes err exit the command with status. caddycmd's exit error is
// unexported and only its wrapper of Caddy's own command functions makes
// one, so the wrapper is asked for it; with no error it logs nothing.
func exitWith(cmd *cobra.Command, status int, err error) error {
	e := &exitError{status: status, err: err}
	if status > 1 {
		e.caddy = caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return status, nil })(cmd, nil)
	}
	return e
}

// checkAccessArgs checks the arguments and flags before anything is read,
// so that a slip is a usage error with nothing looked up.
func checkAccessArgs(args []string, f checkAccessFlags) error {
	switch {
	case len(args) < 3:
		return errors.New("give the user, the method and the path: check-access alice GET /internal/report --config Caddyfile")
	case len(args) > 3:
		return errors.New("too many arguments: give the user, the method and the path")
	case f.config == "":
		return errors.New("missing --config: the Caddyfile or JSON config whose rules to check")
	}
	_, err := newCheckRequest(args[1], args[2], f.host)
	return err
}

// replacerContext holds an empty replacer, which Caddy's host and path
// matchers ask for; no placeholder of a request is known outside a server.
var replacerContext = context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer())

// newCheckRequest is the request check-access decides: method and path
// (with any query) as a client would send them to host.
func newCheckRequest(method, path, host string) (*http.Request, error) {
	switch {
	case method == "" || strings.ContainsFunc(method, func(r rune) bool { return !isTokenChar(r) }):
		return nil, fmt.Errorf("%q is not a request method: a method is a word such as GET or POST", method)
	case method != strings.ToUpper(method):
		// Methods are case-sensitive, so a lowercase one matches no rule's;
		// it is far likelier a slip than a question about such a client.
		return nil, fmt.Errorf("method %q must be written in uppercase, %s, as clients send it", method, strings.ToUpper(method))
	case !strings.HasPrefix(path, "/"):
		return nil, fmt.Errorf("path %q must start with /, as in /internal/report", path)
	case strings.Contains(path, "#"):
		return nil, fmt.Errorf("path %q has a fragment (#…), which clients never send", path)
	case strings.ContainsAny(host, "/@ ") || strings.ContainsFunc(host, isControl):
		return nil, fmt.Errorf("--host %q is not a host name: give it as example.com, without scheme or path", host)
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("path %q: %v", path, err)
	}
	r := &http.Request{Method: method, URL: u, RequestURI: path, Host: host, Header: http.Header{},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	return r.WithContext(replacerContext), nil
}

// isTokenChar reports whether r may be in a method, an RFC 9110 token.
func isTokenChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// checkAccess prints the decision of each site and returns on how many the
// request is refused or needs a second factor.
func (c *state) checkAccess(cmd *cobra.Command, args []string, f checkAccessFlags) (int, error) {
	name := args[0]
	r, err := newCheckRequest(args[1], args[2], f.host)
	if err != nil {
		return 0, err
	}
	sites, err := loadSites(f.config, f.adapter, cmd.ErrOrStderr())
	if err != nil {
		return 0, err
	}
	if f.host != "" {
		sites = slices.DeleteFunc(sites, func(s site) bool { return !s.serves(r) })
		if len(sites) == 0 {
			return 0, fmt.Errorf("no pg_session site of %s serves host %q", f.config, f.host)
		}
	}
	var who access.Subject
	err = c.withUser(cmd, name, func(_ context.Context, _ *store.Store, u *store.User) error {
		who = subjectOf(u, f.secondFactor)
		return nil
	})
	if err != nil {
		return 0, err
	}
	out := cmd.OutOrStdout()
	refused := 0
	for _, s := range sites {
		fmt.Fprintln(out, printable(s.name()))
		if pattern, ok, err := s.publicPattern(r); err != nil {
			return refused, fmt.Errorf("%s: public: %w", s.name(), err)
		} else if ok {
			fmt.Fprintf(out, "  public: served without a session (public %s)\n", printable(pattern))
			continue
		}
		d := s.policy.Explain(r, who)
		outcome := "allowed"
		switch {
		case d.StepUp:
			outcome = "needs a second factor (step-up)"
		case !d.Allowed:
			outcome = "refused (403)"
		}
		if !d.Allowed {
			refused++
		}
		fmt.Fprintf(out, "  %s: %s\n", outcome, printable(d.Why))
	}
	return refused, nil
}

// subjectOf is the user as the gate hands them to the rules: the name as
// names are compared, and the groups as a session in memory carries them.
func subjectOf(u *store.User, secondFactor bool) access.Subject {
	name, err := store.PrepareUsername(u.Username)
	if err != nil {
		// A name stored before the profile tightened compares as its
		// lowercase, as in the gate.
		name.Key = strings.ToLower(u.Username)
	}
	return access.Subject{Username: name.Key, Groups: strings.Join(slices.Sorted(slices.Values(u.Groups)), ","),
		Admin: u.IsAdmin, SecondFactorDone: secondFactor}
}
