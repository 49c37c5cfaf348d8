package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/test/containers"
)

func TestHistogramQuantiles(t *testing.T) {
	uniform := func(n int, unit time.Duration) *Histogram {
		h := &Histogram{}
		for i := 1; i <= n; i++ {
			h.Record(time.Duration(i) * unit)
		}
		return h
	}
	cases := []struct {
		name string
		h    *Histogram
		q    float64
		want time.Duration
	}{
		{"empty is zero", &Histogram{}, 0.99, 0},
		{"single sample", uniform(1, 3*time.Millisecond), 0.5, 3 * time.Millisecond},
		{"median of 1..1000 ms", uniform(1000, time.Millisecond), 0.5, 500 * time.Millisecond},
		{"p99 of 1..1000 ms", uniform(1000, time.Millisecond), 0.99, 990 * time.Millisecond},
		{"p99.9 of 1..10000 us", uniform(10000, time.Microsecond), 0.999, 9990 * time.Microsecond},
		{"max quantile is the max", uniform(1000, time.Millisecond), 1, 1000 * time.Millisecond},
		{"sub-microsecond exact", uniform(50, time.Nanosecond), 0.5, 25 * time.Nanosecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.h.Quantile(c.q)
			if c.want == 0 {
				if got != 0 {
					t.Fatalf("Quantile(%v) = %v, want 0", c.q, got)
				}
				return
			}
			if rel := math.Abs(float64(got-c.want)) / float64(c.want); rel > 1.0/64 {
				t.Fatalf("Quantile(%v) = %v, want %v within 1.6%% (off by %.2f%%)", c.q, got, c.want, rel*100)
			}
		})
	}
}

func TestHistogramBucketsCoverTheRange(t *testing.T) {
	for v := int64(1); v < 1<<histMaxExp; v = v*3/2 + 1 {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside [0, %d)", v, i, histBuckets)
		}
		if mid := bucketMid(i); math.Abs(float64(mid-v))/float64(v) > 1.0/64 {
			t.Fatalf("value %d lands in bucket %d whose middle is %d: more than 1.6%% away", v, i, mid)
		}
	}
	if i := bucketOf(1 << 62); i != histBuckets-1 {
		t.Fatalf("huge samples go to bucket %d, want the last one %d", i, histBuckets-1)
	}
}

func TestHistogramMerge(t *testing.T) {
	a, b := &Histogram{}, &Histogram{}
	for i := range 100 {
		a.Record(time.Millisecond)
		if i < 10 {
			b.Record(time.Second)
		}
	}
	a.Merge(b)
	if a.Count() != 110 || a.Max() != time.Second {
		t.Fatalf("merged count %d max %v, want 110 and 1s", a.Count(), a.Max())
	}
	if p99 := a.Quantile(0.99); p99 < 990*time.Millisecond {
		t.Fatalf("p99 after merge = %v, want about 1s (10 of 110 samples are 1s)", p99)
	}
}

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", check: func(t *testing.T, o options) {
			if o.Users != 100_000 || o.Concurrency != 32 || o.RSSConns != 256 || o.LagRate != 500 || o.RelayEvents != 50_000 {
				t.Errorf("defaults %+v", o)
			}
			if o.LagDuration != o.Duration || len(o.Workloads) != len(workloads) {
				t.Errorf("lag duration %v (duration %v), workloads %v", o.LagDuration, o.Duration, o.Workloads)
			}
		}},
		{name: "a million users", args: []string{"-users", "1000000"}, check: func(t *testing.T, o options) {
			if o.Users != 1_000_000 {
				t.Errorf("users %d", o.Users)
			}
		}},
		{name: "max page clamps to the table", args: []string{"-users", "25", "-max-page", "100"}, check: func(t *testing.T, o options) {
			if o.MaxPage != 3 {
				t.Errorf("max page %d, want 3 (25 users, 10 a page)", o.MaxPage)
			}
		}},
		{name: "workload subset", args: []string{"-workloads", "get, create"}, check: func(t *testing.T, o options) {
			if strings.Join(o.Workloads, ",") != "get,create" {
				t.Errorf("workloads %v", o.Workloads)
			}
		}},
		{name: "timing concurrency at most the concurrency", args: []string{"-concurrency", "1"}, check: func(t *testing.T, o options) {
			if o.TimingConc != 1 {
				t.Errorf("timing concurrency %d with -concurrency 1, want 1", o.TimingConc)
			}
		}},
		{name: "no timing workers", args: []string{"-timing-concurrency", "0"}, wantErr: "-timing-concurrency"},
		{name: "postgres store", args: []string{"-store", "postgres"}, check: func(t *testing.T, o options) {
			if o.Store != "postgres" || o.Admin != defaultPostgresAdmin {
				t.Errorf("store %q admin %q", o.Store, o.Admin)
			}
		}},
		{name: "unknown store", args: []string{"-store", "oracle"}, wantErr: "-store"},
		{name: "unknown workload", args: []string{"-workloads", "get,delete"}, wantErr: `unknown "delete"`},
		{name: "no users", args: []string{"-users", "0"}, wantErr: "-users"},
		{name: "unbounded duration", args: []string{"-duration", "2h"}, wantErr: "-duration"},
		{name: "zero rounds", args: []string{"-rounds", "0"}, wantErr: "-rounds"},
		{name: "stray argument", args: []string{"now"}, wantErr: "unexpected arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseFlags(c.args, io.Discard)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, o)
		})
	}
}

func TestEvaluate(t *testing.T) {
	phase := func(rps float64, errs uint64) *Phase { return &Phase{RPS: rps, Errors: errs} }
	r := &Results{
		Workloads: []WorkloadResult{
			{Name: "get", MinRatio: 0.5, Service: phase(600, 0), Raw: phase(1000, 0), Ratio: 0.6},
			{Name: "list", MinRatio: 0.4, Service: phase(300, 0), Raw: phase(1000, 0), Ratio: 0.3},
			{Name: "patch", Service: phase(100, 2), Raw: phase(100, 0), Ratio: 1},
			{Name: "get-token", MinRatio: 0.9, Sides: [2]string{"token", "no auth"}, Service: phase(850, 0), Raw: phase(1000, 0), Ratio: 0.85},
			{Name: "verify-fail", MaxMedianGap: 0.1, Sides: [2]string{"unknown email", "wrong password"}, Service: phase(10, 0), Raw: phase(10, 0)},
			{Name: "stale-if-match", MaxMedianGap: 0.1, Sides: [2]string{"right password", "wrong password"}, Service: phase(10, 0), Raw: phase(10, 0)},
		},
		Relay: &RelayResult{EventsPerS: 9000},
		Lag:   &LagResult{Rate: 500, Lag: Latency{P99: Millis(40 * time.Millisecond)}},
		Compare: []Comparison{
			{Workload: "list", Users: 1_000_000, OtherUsers: 10_000, Growth: 1.5},
			{Workload: "filter", Users: 1_000_000, OtherUsers: 10_000, Growth: 2.5},
			{Workload: "get", Users: 1_000_000, OtherUsers: 10_000, Growth: 9},   // no growth target
			{Workload: "filter", Users: 200_000, OtherUsers: 100_000, Growth: 9}, // too close in size
		},
	}
	// Medians 20 against 21.9 ms (9.5% apart) and 20 against 22.1 ms (10.5%).
	median := func(w *WorkloadResult, a, b time.Duration) {
		w.Service.Latency.P50, w.Raw.Latency.P50 = Millis(a), Millis(b)
		w.finish()
	}
	median(&r.Workloads[4], 20*time.Millisecond, 21900*time.Microsecond)
	median(&r.Workloads[5], 22100*time.Microsecond, 20*time.Millisecond)
	want := map[string]bool{
		"get-token throughput vs no auth":                     false,
		"get-token errors":                                    true,
		"verify-fail p50 unknown email vs wrong password":     true,
		"verify-fail errors":                                  true,
		"stale-if-match p50 right password vs wrong password": false,
		"stale-if-match errors":                               true,
		"get throughput vs raw":                               true,
		"get errors":                                          true,
		"list throughput vs raw":                              false,
		"list errors":                                         true,
		"patch errors":                                        false,
		"list p99 at 1000000 vs 10000 users":                  true,
		"filter p99 at 1000000 vs 10000 users":                false,
		"relay throughput":                                    false,
		"event lag p99 at 500 mutations/s":                    true,
	}
	got := map[string]bool{}
	for _, tg := range evaluate(r) {
		got[tg.Name] = tg.Pass
	}
	if len(got) != len(want) {
		t.Errorf("targets %v, want %v", got, want)
	}
	for name, pass := range want {
		if g, ok := got[name]; !ok || g != pass {
			t.Errorf("target %q: pass=%v present=%v, want pass=%v", name, g, ok, pass)
		}
	}
}

// TestRunSmoke runs the whole benchmark in miniature, on the local MariaDB
// (through the default create-and-drop path, under a name of its own) and
// on an SQLite file, and checks that every part measured something and
// that the report and the JSON file say so.
func TestRunSmoke(t *testing.T) {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	backends := []struct {
		name string
		args []string
	}{
		// The MySQL-compatible server of this test process (a container, or
		// USERSVC_TEST_MYSQL_URL), not the benchmark's default admin URL.
		{"mariadb", []string{"-mysql-admin", containers.MySQLServerURL(t), "-dbname", "usersvc_load_smoke_" + hex.EncodeToString(suffix), "-innodb-buffer-pool", "256MiB"}},
		{"sqlite", []string{"-db", "sqlite://" + filepath.Join(t.TempDir(), "load.db")}},
		{"postgres", []string{"-store", "postgres", "-postgres-admin", containers.PostgresServerURL(t), "-dbname", "usersvc_load_smoke_" + hex.EncodeToString(suffix)}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "results.json")
			args := append([]string{
				// 3,000 users: the walk's pages of 100 end between 90% and the last page.
				// 600 ms a side: under -race on a busy CI machine, SQLite's creates
				// once completed none in 300 ms (a request counts when it ends in
				// the window).
				"-users", "3000", "-walk", "-search-scan", "-duration", "600ms", "-warmup", "0", "-rounds", "1", "-concurrency", "4",
				"-rss-conns", "8", "-relay-events", "300", "-lag-rate", "50", "-lag-duration", "300ms", "-timeout", "4m", "-cheap-hash",
			}, b.args...)
			o, err := parseFlags(args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			poolBefore := bufferPoolSize(t, b.name)
			res, err := run(context.Background(), o, nil)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if b.name == "mariadb" {
				if res.BufferPool == nil || res.BufferPool.Bytes != 256<<20 || res.BufferPool.TableBytes <= 0 {
					t.Errorf("buffer pool during the run %+v, want 256 MiB and the table's size", res.BufferPool)
				}
				if after := bufferPoolSize(t, b.name); after != poolBefore {
					t.Errorf("innodb_buffer_pool_size is %d after the run, was %d: not restored", after, poolBefore)
				}
			}
			if b.name == "postgres" {
				if bp := res.BufferPool; bp == nil || bp.Name != sharedBuffers || bp.Bytes < 128<<10 || bp.TableBytes <= 0 ||
					!slices.Contains([]string{hugePagesYes, hugePagesNo, hugePagesUnknown}, bp.HugePages) {
					t.Errorf("shared_buffers during the run %+v, want a size, the table's and whether it is in huge pages", bp)
				}
			}
			for _, w := range res.Workloads {
				for side, p := range map[string]*Phase{"service": w.Service, "raw": w.Raw} {
					if p.Requests == 0 || p.Errors != 0 || p.RPS <= 0 || p.Latency.P50 <= 0 {
						t.Errorf("%s %s: %d requests, %d errors %v, %.0f req/s, p50 %v", w.Name, side, p.Requests, p.Errors, p.ErrorSamples, p.RPS, p.Latency.P50)
					}
				}
			}
			if len(res.Workloads) != len(workloads) {
				t.Errorf("%d workloads measured, want %d", len(res.Workloads), len(workloads))
			}
			// Every pass reads the 3,000 users on both sides, until the
			// service's side has run for walkMinTime.
			if w := res.Scale.Walk; w == nil || w.Passes < 1 || w.Rows != 3000*int64(w.Passes) || w.RawRows != w.Rows ||
				w.Duration < walkMinTime || w.Errors != 0 || w.RowsPerS <= 0 || w.RawPerS <= 0 {
				t.Errorf("walk %+v", w)
			}
			if p := res.Scale.SearchScan; p == nil || p.Requests == 0 || p.Errors != 0 {
				t.Errorf("search scan %+v", p)
			}
			if res.Scale.DeepDepth != 2700 {
				t.Errorf("deep cursors after row %d, want 2700", res.Scale.DeepDepth)
			}
			if res.RSS == nil || res.RSS.PeakBytes <= 0 || res.RSS.ReadsPeakBytes <= 0 || res.RSS.PeakConns < 8 ||
				res.RSS.Phase.Errors != 0 || res.RSS.Reads.Errors != 0 || res.RSS.Reads.Requests == 0 {
				t.Errorf("rss check %+v; mixed %+v; reads %+v", res.RSS, res.RSS.Phase, res.RSS.Reads)
			}
			if res.Relay == nil || res.Relay.Events != 300 || res.Relay.EventsPerS <= 0 || res.Relay.Relay.Messages < 300 {
				t.Errorf("relay %+v", res.Relay)
			}
			if res.Lag == nil || res.Lag.Events == 0 || res.Lag.Events != res.Lag.Mutations || res.Lag.Unacked != 0 || res.Lag.Errors != 0 {
				t.Errorf("event lag %+v", res.Lag)
			}
			var report bytes.Buffer
			printReport(&report, res)
			for _, w := range res.Workloads {
				want := o.Concurrency
				if w.Name == "verify-fail" || w.Name == "stale-if-match" {
					want = o.TimingConc
				}
				if w.Concurrency != want {
					t.Errorf("%s ran at concurrency %d, want %d", w.Name, w.Concurrency, want)
				}
			}
			var targets []string
			for _, tg := range res.Targets {
				targets = append(targets, tg.Name)
			}
			for _, want := range []string{"get-token throughput vs no auth", "verify throughput vs raw",
				"verify-fail p50 unknown email vs wrong password", "stale-if-match p50 right password vs wrong password"} {
				if !slices.Contains(targets, want) {
					t.Errorf("no target %q among %q", want, targets)
				}
			}
			for _, want := range []string{"service/raw", "get", "mixed", "peak RSS", "relay:", "event lag", "targets (issues 7, 14, 15, 18, 20)", "deep", "walk of every user", "LIKE scan",
				"get-token", "create-token", "no auth", "verify", "unknown email", "stale-if-match", "right password"} {
				if !strings.Contains(report.String(), want) {
					t.Errorf("report lacks %q:\n%s", want, report.String())
				}
			}
			if err := writeJSON(out, res); err != nil {
				t.Fatal(err)
			}
			written, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{loadPassword, seedPassword, wrongPassword, "Bearer", "eyJ"} {
				if strings.Contains(report.String(), secret) || strings.Contains(string(written), secret) {
					t.Errorf("the report or the JSON file shows a password or the token (%q)", secret)
				}
			}
			back, err := readJSON(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(back.Workloads) != len(res.Workloads) || back.Workloads[0].Service.Latency.P99 == 0 {
				t.Errorf("JSON round trip lost the results: %+v", back.Workloads)
			}
			cmp := compareRuns(res, back)
			if len(cmp) != len(res.Workloads) || cmp[0].Growth < 0.99 || cmp[0].Growth > 1.01 {
				t.Errorf("a run compared with itself: %+v", cmp)
			}
		})
	}
}

func TestListenerPID(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if got := listenerPID(port); got != os.Getpid() {
		t.Fatalf("listenerPID(%d) = %d, want this process %d", port, got, os.Getpid())
	}
	ln.Close()
	if got := listenerPID(port); got != 0 {
		t.Fatalf("listenerPID(%d) after close = %d, want 0", port, got)
	}
}

// The RSS target is shown with the memory limit the service is deployed
// with, so the two must not drift apart.
func TestRSSCheckUsesTheDeployedMemoryLimit(t *testing.T) {
	want := regexp.MustCompile(`(?m)^\s*GOMEMLIMIT:\s*"?([^"\s]+)"?\s*$`)
	for _, file := range []string{"../../deploy/k8s/configmap.yaml", "../../deploy/compose.yaml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		m := want.FindSubmatch(b)
		if m == nil {
			t.Errorf("%s sets no GOMEMLIMIT", file)
			continue
		}
		if got := string(m[1]); got != deployGoMemLimit {
			t.Errorf("%s sets GOMEMLIMIT %s, the RSS check runs with %s", file, got, deployGoMemLimit)
		}
	}
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.RSSGoMemLimit != deployGoMemLimit {
		t.Errorf("-rss-gomemlimit defaults to %q, want %q", o.RSSGoMemLimit, deployGoMemLimit)
	}
}

// bufferPoolSize reads the test MySQL server's innodb_buffer_pool_size (0
// for the other backends).
func bufferPoolSize(t *testing.T, backend string) int64 {
	t.Helper()
	if backend != "mariadb" {
		return 0
	}
	db, err := openRawPool(containers.MySQLServerURL(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow("SELECT @@innodb_buffer_pool_size").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1073741824", 1 << 30},
		{"1GiB", 1 << 30},
		{"512MiB", 512 << 20},
		{"64KiB", 64 << 10},
		{"100B", 100},
		{"", 0},
		{"1GB", 0},
		{"-1MiB", 0},
		{"0", 0},
		{"huge", 0},
		{"99999999999GiB", 0},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseBytes(tc.in)
			if tc.want == 0 {
				if err == nil {
					t.Fatalf("parseBytes(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestSharedMemoryPages(t *testing.T) {
	const shared = 1 << 30
	mapping := func(header string, sizeKB, pageKB int) string {
		return fmt.Sprintf("%s\nSize:            %d kB\nKernelPageSize:     %d kB\nMMUPageSize:        %d kB\nRss:                   0 kB\nVmFlags: rd wr sh mr mw me ms\n", header, sizeKB, pageKB, pageKB)
	}
	const (
		heap = "55d0c0a00000-55d0c0b00000 rw-p 00000000 00:00 0                          [heap]"
		huge = "7fea15a00000-7fea58c00000 rw-s 00000000 00:11 76983                      /anon_hugepage (deleted)"
		anon = "7fea15a00000-7fea58c00000 rw-s 00000000 00:01 4                          /dev/zero (deleted)"
		sysv = "7fea5b429000-7fea5b42a000 rw-s 00000000 00:01 16                         /SYSV000b6051 (deleted)"
	)
	for _, tc := range []struct {
		name, smaps, want string
	}{
		{"shared memory in 2 MiB pages", mapping(heap, 824, 4) + mapping(huge, 1099776, 2048) + mapping(sysv, 4, 4), hugePagesYes},
		{"shared memory in 4 KiB pages", mapping(heap, 824, 4) + mapping(anon, 1099776, 4) + mapping(sysv, 4, 4), hugePagesNo},
		{"only a small mapping in huge pages", mapping(heap, 2048, 2048) + mapping(anon, 1099776, 4), hugePagesNo},
		{"no mappings", "", hugePagesNo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sharedMemoryPages(tc.smaps, shared); got != tc.want {
				t.Fatalf("sharedMemoryPages = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestBackendHugePagesIgnoresOtherProcesses: a pid that is not a backend
// of this machine's server for that client (a server in a container has
// pids of its own) says nothing.
func TestBackendHugePagesIgnoresOtherProcesses(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
	}{
		{"this test process", os.Getpid()},
		{"no such process", 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := backendHugePages(tc.pid, 5432, 1<<20); got != hugePagesUnknown {
				t.Fatalf("backendHugePages = %q, want %q", got, hugePagesUnknown)
			}
		})
	}
}
