package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/marketplace/usersvc/adapters/metrics"
)

// families is one parsed scrape, by metric name.
type families map[string]*dto.MetricFamily

// serveMetrics serves m.Handler() over real HTTP on loopback.
func serveMetrics(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// scrape GETs url and parses the Prometheus text exposition.
func scrape(t *testing.T, url string) families {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET %s: Content-Type %q, want the text exposition format", url, ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	got, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return got
}

// labels is a series' label set; nil matches a series without labels.
type labels map[string]string

// series returns the series of name whose labels are exactly want.
func (f families) series(name string, want labels) (*dto.Metric, bool) {
	mf, ok := f[name]
	if !ok {
		return nil, false
	}
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
				match = false
				break
			}
		}
		if match {
			return m, true
		}
	}
	return nil, false
}

// value returns the value of a counter, gauge or untyped series, failing
// the test when the series is absent.
func (f families) value(t *testing.T, name string, want labels) float64 {
	t.Helper()
	m, ok := f.series(name, want)
	if !ok {
		t.Fatalf("series %s%v absent; have %s", name, want, f.describe(name))
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	t.Fatalf("series %s%v is neither a counter nor a gauge", name, want)
	return 0
}

// histogram returns a histogram series, failing the test when absent.
func (f families) histogram(t *testing.T, name string, want labels) *dto.Histogram {
	t.Helper()
	m, ok := f.series(name, want)
	if !ok || m.Histogram == nil {
		t.Fatalf("histogram %s%v absent; have %s", name, want, f.describe(name))
	}
	return m.Histogram
}

// labelValues lists the distinct values of one label across a family.
func (f families) labelValues(name, label string) []string {
	seen := map[string]bool{}
	for _, m := range f[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				seen[lp.GetValue()] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// describe lists the label sets of a family, for failure messages.
func (f families) describe(name string) string {
	mf, ok := f[name]
	if !ok {
		return "no such family"
	}
	var sets []string
	for _, m := range mf.GetMetric() {
		var kv []string
		for _, lp := range m.GetLabel() {
			kv = append(kv, lp.GetName()+"="+lp.GetValue())
		}
		sets = append(sets, "{"+strings.Join(kv, ",")+"}")
	}
	return strings.Join(sets, " ")
}

// upperBounds lists a histogram's bucket bounds, +Inf included.
func upperBounds(h *dto.Histogram) []float64 {
	out := make([]float64, 0, len(h.GetBucket()))
	for _, b := range h.GetBucket() {
		out = append(out, b.GetUpperBound())
	}
	return out
}
