package main

import (
	"fmt"
	"io"
	"time"
)

// Issue 18's targets.
const (
	// todaysSearchRPS is search's throughput at 100,000 users before the
	// trigram indexes (the LIKE scan; README, make bench of 2026-11-27).
	todaysSearchRPS   = 109
	todaysSearchUsers = 100_000
	targetSearchGain  = 20
	targetDeepP99     = 2.0 // deep cursor page p99 / first page p99
	targetWalkRatio   = 0.5 // walk rows/s / raw keyset walk rows/s
	searchGrowthUsers = 100 // search p99 compared between runs this far apart in size
)

func workloadByName(r *Results, name string) *WorkloadResult {
	for i := range r.Workloads {
		if r.Workloads[i].Name == name {
			return &r.Workloads[i]
		}
	}
	return nil
}

// evaluateScale adds issue 18's targets to a run's.
func evaluateScale(r *Results) []Target {
	var ts []Target
	first, deep := workloadByName(r, "first"), workloadByName(r, "deep")
	if first != nil && deep != nil && first.Service.Latency.P99 > 0 {
		g := float64(deep.Service.Latency.P99) / float64(first.Service.Latency.P99)
		ts = append(ts, Target{Name: fmt.Sprintf("cursor page at depth %d p99 vs first page", r.Scale.DeepDepth),
			Want: fmt.Sprintf("<= %.0fx", targetDeepP99), Got: fmt.Sprintf("%.2fx (%v vs %v ms)", g, deep.Service.Latency.P99, first.Service.Latency.P99),
			Pass: g <= targetDeepP99})
	}
	if s := workloadByName(r, "search"); s != nil && r.Population.Users == todaysSearchUsers {
		ts = append(ts, Target{Name: "search throughput at 100000 users vs today's", Want: fmt.Sprintf(">= %dx %d req/s", targetSearchGain, todaysSearchRPS),
			Got: fmt.Sprintf("%.0f req/s (%.0fx)", s.Service.RPS, s.Service.RPS/todaysSearchRPS), Pass: s.Service.RPS >= targetSearchGain*todaysSearchRPS})
	}
	for _, c := range r.Compare {
		lo, hi := min(c.Users, c.OtherUsers), max(c.Users, c.OtherUsers)
		if c.Workload != "search" || lo == 0 || hi/lo < searchGrowthUsers {
			continue
		}
		ts = append(ts, Target{Name: fmt.Sprintf("search p99 at %d vs %d users", hi, lo), Want: fmt.Sprintf("<= %.0fx", targetP99Growth),
			Got: fmt.Sprintf("%.2fx", c.Growth), Pass: c.Growth <= targetP99Growth})
	}
	if w := r.Scale.Walk; w != nil {
		ts = append(ts, Target{Name: "walk by cursor vs raw keyset walk", Want: fmt.Sprintf(">= %.0f%% rows/s", targetWalkRatio*100),
			Got: fmt.Sprintf("%.0f%% (%.0f vs %.0f rows/s)", w.Ratio*100, w.RowsPerS, w.RawPerS), Pass: w.Ratio >= targetWalkRatio && w.Errors == 0})
		ts = append(ts, Target{Name: "walk errors", Want: "0", Got: fmt.Sprint(w.Errors), Pass: w.Errors == 0})
	}
	if s := r.Scale.SearchScan; s != nil {
		ts = append(ts, Target{Name: "search-scan errors", Want: "0", Got: fmt.Sprint(s.Errors), Pass: s.Errors == 0})
	}
	return ts
}

func printScale(w io.Writer, r *Results) {
	if x := r.Scale.Walk; x != nil {
		fmt.Fprintf(w, "walk of every user by cursor (%d a page, one client, in turns with the raw walk, %d passes): %d rows in %d pages, %v, %.0f rows/s; raw keyset walk %d rows, %v, %.0f rows/s: %.2f of raw, %d errors\n",
			x.PageSize, x.Passes, x.Rows, x.Pages, x.Duration.Round(time.Millisecond), x.RowsPerS, x.RawRows, x.RawTime.Round(time.Millisecond), x.RawPerS, x.Ratio, x.Errors)
		for _, s := range x.ErrorTexts {
			fmt.Fprintf(w, "  walk error: %s\n", s)
		}
	}
	if s := r.Scale.SearchScan; s != nil {
		line := fmt.Sprintf("search alternative, the LIKE scan (raw, %d at a time): %.0f req/s, p50 %v ms, p99 %v ms, %d errors", r.Options.searchScanConcurrency(), s.RPS, s.Latency.P50, s.Latency.P99, s.Errors)
		if t := workloadByName(r, "search"); t != nil && s.RPS > 0 {
			line += fmt.Sprintf("; the trigram index through the service: %.0fx its req/s", t.Service.RPS/s.RPS)
		}
		fmt.Fprintln(w, line)
		for _, e := range s.ErrorSamples {
			fmt.Fprintf(w, "  search-scan error: %s\n", e)
		}
	}
}
