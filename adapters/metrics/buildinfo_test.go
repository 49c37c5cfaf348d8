package metrics_test

import (
	"testing"

	"github.com/marketplace/usersvc/adapters/buildinfo"
	"github.com/marketplace/usersvc/adapters/metrics"
)

// usersvc_build_info is 1 with the labels `usersvc version` prints.
func TestBuildInfoMetric(t *testing.T) {
	fams := scrape(t, serveMetrics(t, metrics.New()))
	fam, ok := fams["usersvc_build_info"]
	if !ok || len(fam.GetMetric()) != 1 {
		t.Fatalf("usersvc_build_info missing or not one series: %v", fam)
	}
	m := fam.GetMetric()[0]
	if m.GetGauge().GetValue() != 1 {
		t.Errorf("value %v, want 1", m.GetGauge().GetValue())
	}
	want := buildinfo.Read()
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	for name, v := range map[string]string{"version": want.Version, "revision": want.Revision, "goversion": want.GoVersion} {
		if labels[name] != v || v == "" {
			t.Errorf("label %s = %q, want %q (non-empty)", name, labels[name], v)
		}
	}
}
