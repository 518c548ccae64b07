package pgsession

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example dashboard charts every metric the plugin has, and only those,
// and docs/reference.md lists each: a renamed metric cannot leave them behind.
func TestDashboardAndReadmeNameEveryMetric(t *testing.T) {
	t.Parallel()
	var names []string
	descs := make(chan *prometheus.Desc, 100)
	for _, c := range newMetrics().collectors {
		c.Describe(descs)
	}
	close(descs)
	for d := range descs {
		m := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String())
		require.NotNil(t, m, d.String())
		names = append(names, m[1])
	}
	slices.Sort(names)

	dashboard, err := os.ReadFile("contrib/grafana/caddy-pg-session.json")
	require.NoError(t, err)
	var charted []string
	for _, name := range regexp.MustCompile(`caddy_pg_session_[a-z_]+`).FindAllString(string(dashboard), -1) {
		name = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		if !slices.Contains(charted, name) {
			charted = append(charted, name)
		}
	}
	slices.Sort(charted)
	assert.Equal(t, names, charted, "the metrics the dashboard charts")

	readme, err := os.ReadFile("docs/reference.md")
	require.NoError(t, err)
	for _, name := range names {
		assert.True(t, strings.Contains(string(readme), "`"+name+"`"), "the Metrics section of docs/reference.md lists %s", name)
	}
}
