package pgsession

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/cli"
	"github.com/pgsession/caddy-pgsession/internal/routes"
)

// referencePath is where users learn the options, routes, commands and
// refusal reasons; the README links to it.
const referencePath = "docs/reference.md"

// The reference is where users learn the options, routes and commands: each
// one the code has must be in it, so none ships undocumented.
func TestREADMEDocumentsEveryOptionRouteAndCommand(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)

	t.Run("options", func(t *testing.T) {
		for receiver, lists := range documentedOptions(t, "caddyfile.go") {
			for _, option := range lists.doc {
				// An option of a nested block (identity_provider/issuer) is defined by its own
				// name, and its syntax line is indented once more, inside its block's.
				syntax, name := "\t"+regexp.QuoteMeta(option)+" ", option
				if _, sub, nested := strings.Cut(option, "/"); nested {
					// A flag such as github stands alone on its line.
					syntax, name = "\t\t"+regexp.QuoteMeta(sub)+"( |$)", sub
				}
				// Each option has its definition under its block's syntax, as on Caddy's
				// directive pages: "- **name** is …".
				if !regexp.MustCompile(`(?m)^- \*\*` + regexp.QuoteMeta(name) + `\*\*[ :]`).MatchString(readme) {
					t.Errorf("option %s of (*%s).UnmarshalCaddyfile has no definition (- **%s** …) in %s", option, receiver, name, referencePath)
				}
				// And it is in the block's syntax: a line of a caddyfile code block.
				if !regexp.MustCompile("(?m)^" + syntax).MatchString(readme) {
					t.Errorf("option %s of (*%s).UnmarshalCaddyfile is not in a syntax block of %s", option, receiver, referencePath)
				}
			}
		}
	})

	t.Run("routes", func(t *testing.T) {
		site := routes.New(routes.Config{LoginPath: "/login", LogoutPath: "/logout", AccountPath: "/account", APIPath: "/api/auth",
			AdminPath: "/admin"},
			&routes.Shared{}, zap.NewNop())
		for _, route := range site.Routes() {
			if !strings.Contains(readme, "`"+route+"`") {
				t.Errorf("route %s is not in the route tables of %s", route, referencePath)
			}
		}
	})

	t.Run("commands", func(t *testing.T) {
		root := &cobra.Command{Use: "pg-session"}
		cli.Command().CobraFunc(root)
		var walk func(prefix string, cmd *cobra.Command)
		walk = func(prefix string, cmd *cobra.Command) {
			for _, sub := range cmd.Commands() {
				if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
					continue
				}
				name := strings.TrimSpace(prefix + " " + sub.Name())
				if sub.HasSubCommands() {
					walk(name, sub)
					continue
				}
				// The command list in the reference's "Command line" section: "  user add NAME …".
				if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + `( |$)`).MatchString(readme) {
					t.Errorf("command caddy pg-session %s is not in the command list of %s", name, referencePath)
				}
			}
		}
		walk("", root)
	})
}
