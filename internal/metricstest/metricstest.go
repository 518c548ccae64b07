// Package metricstest reads Prometheus metrics in tests as a dashboard
// would: from a registry, or from the text a /metrics endpoint serves.
package metricstest

import (
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Families are metric families by name.
type Families map[string]*dto.MetricFamily

// Gather reads every metric of g.
func Gather(tb testing.TB, g prometheus.Gatherer) Families {
	tb.Helper()
	list, err := g.Gather()
	require.NoError(tb, err)
	families := make(Families, len(list))
	for _, f := range list {
		families[f.GetName()] = f
	}
	return families
}

// Parse reads the text format a /metrics endpoint serves.
func Parse(tb testing.TB, r io.Reader) Families {
	tb.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	require.NoError(tb, err)
	return families
}

// Value is the sample of the family name whose label is value (the first
// sample when label is empty): a counter's or gauge's value, a histogram's
// count of observations. A sample that is not there fails the test.
func (f Families) Value(tb testing.TB, name, label, value string) float64 {
	tb.Helper()
	family, ok := f[name]
	require.True(tb, ok, "%s is not served", name)
	for _, m := range family.GetMetric() {
		if label != "" && labelValue(m, label) != value {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	require.Failf(tb, "no such sample", "%s{%s=%q}", name, label, value)
	return 0
}

// Sample is a sample a test expects: its family, a label and its value
// (none when Label is empty), and the number.
type Sample struct {
	Name, Label, Value string
	N                  float64
}

// Want is the Sample of the family name whose label is value, at n.
func Want(name, label, value string, n float64) Sample {
	return Sample{Name: name, Label: label, Value: value, N: n}
}

// Expect checks every sample of wants, whose names get prefix in front.
func (f Families) Expect(tb testing.TB, prefix string, wants ...Sample) {
	tb.Helper()
	for _, w := range wants {
		assert.Equal(tb, w.N, f.Value(tb, prefix+w.Name, w.Label, w.Value), "%s%s{%s=%q}", prefix, w.Name, w.Label, w.Value)
	}
}

// LabelValues lists the values label takes in the family name.
func (f Families) LabelValues(name, label string) []string {
	var values []string
	for _, m := range f[name].GetMetric() {
		values = append(values, labelValue(m, label))
	}
	return values
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
