package pgsession

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/pgsession/caddy-pgsession/internal/cli"
)

// The README is where users learn the options, routes and commands: each
// one the code has must be in it, so none ships undocumented.
func TestREADMEDocumentsEveryOptionRouteAndCommand(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)

	t.Run("options", func(t *testing.T) {
		for receiver, lists := range documentedOptions(t, "caddyfile.go") {
			for _, option := range lists.doc {
				// Each option is a row of the README's option tables: | `name …` | default | meaning |
				if !regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(option) + "[ `]").MatchString(readme) {
					t.Errorf("option %s of (*%s).UnmarshalCaddyfile has no row in the README's option tables", option, receiver)
				}
			}
		}
	})

	t.Run("routes", func(t *testing.T) {
		h := &Handler{LoginPath: "/login", LogoutPath: "/logout", AccountPath: "/account", APIPath: "/api/auth"}
		h.addRoutes()
		for _, rte := range h.router.routes {
			if rte.method == http.MethodHead {
				continue // every GET route answers HEAD too
			}
			route := rte.method + " /" + strings.Join(rte.pattern, "/")
			if !strings.Contains(readme, "`"+route+"`") {
				t.Errorf("route %s is not in the README's route tables", route)
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
				// The command list in the README's "Command line" section: "  user add NAME …".
				if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + `( |$)`).MatchString(readme) {
					t.Errorf("command caddy pg-session %s is not in the README's command list", name)
				}
			}
		}
		walk("", root)
	})
}
