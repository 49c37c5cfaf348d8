package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/marketplace/usersvc/adapters/gormstore"
)

// Results is everything one run measured; it is also the JSON file.
type Results struct {
	Date         string           `json:"date"`
	Machine      Machine          `json:"machine"`
	Options      options          `json:"options"`
	Population   population       `json:"population"`
	Seed         seedResult       `json:"seed"`
	BufferPool   *BufferPool      `json:"buffer_pool,omitempty"`
	Workloads    []WorkloadResult `json:"workloads"`
	RSS          *RSSResult       `json:"rss,omitempty"`
	Relay        *RelayResult     `json:"relay,omitempty"`
	Lag          *LagResult       `json:"event_lag,omitempty"`
	PeakRSSBytes int64            `json:"peak_rss_bytes_whole_run"`
	Scale        ScaleResults     `json:"scale"`
	Compare      []Comparison     `json:"compare,omitempty"`
	Targets      []Target         `json:"targets"`
}

// WorkloadResult is one workload, both sides.
type WorkloadResult struct {
	Name     string  `json:"name"`
	Doc      string  `json:"doc"`
	Service  *Phase  `json:"service"`
	Raw      *Phase  `json:"raw"`
	Ratio    float64 `json:"ratio"`
	MinRatio float64 `json:"min_ratio,omitempty"`
	// Sides names the sides when they are not "service" and "raw".
	Sides [2]string `json:"sides,omitempty"`
	// MedianGap is how far the larger of the sides' medians is above the
	// smaller (0.05: 5%); MaxMedianGap its target (0: none).
	MedianGap    float64 `json:"median_gap"`
	MaxMedianGap float64 `json:"max_median_gap,omitempty"`
	// Concurrency is the workers of each side.
	Concurrency int `json:"concurrency"`
	// CPURatio compares requests per CPU-second of this process and the
	// database server together: the ratio the sides would have if each had
	// the same CPU, whatever other processes took meanwhile. The service's
	// side includes the load generator's CPU (it shares the process).
	CPURatio float64 `json:"cpu_normalised_ratio"`
	// Rounds is how many raw/service alternations ran; Typical is the
	// service's median latency in the calibration that chose it.
	Rounds  int    `json:"rounds"`
	Typical Millis `json:"typical_latency_ms"`
}

func (w *WorkloadResult) finish() *WorkloadResult {
	w.Service.finish()
	w.Raw.finish()
	if w.Raw.RPS > 0 {
		w.Ratio = w.Service.RPS / w.Raw.RPS
	}
	if s, r := w.Service.perCore(), w.Raw.perCore(); r > 0 {
		w.CPURatio = s / r
	}
	if a, b := w.Service.Latency.P50, w.Raw.Latency.P50; a > 0 && b > 0 {
		w.MedianGap = float64(max(a, b))/float64(min(a, b)) - 1
	}
	return w
}

// sideNames are the names of the service and the raw side.
func (w *WorkloadResult) sideNames() [2]string {
	if w.Sides[0] == "" {
		return [2]string{"service", "raw"}
	}
	return w.Sides
}

// Comparison sets this run's p99 against another run's, workload by workload.
type Comparison struct {
	Workload   string  `json:"workload"`
	Users      int     `json:"users"`
	OtherUsers int     `json:"other_users"`
	P99        Millis  `json:"p99_ms"`
	OtherP99   Millis  `json:"other_p99_ms"`
	Growth     float64 `json:"growth"` // p99 of the larger table / p99 of the smaller one
}

func compareRuns(this, other *Results) []Comparison {
	var out []Comparison
	for _, w := range this.Workloads {
		for _, o := range other.Workloads {
			if o.Name != w.Name || o.Service == nil {
				continue
			}
			c := Comparison{Workload: w.Name, Users: this.Options.Users, OtherUsers: other.Options.Users,
				P99: w.Service.Latency.P99, OtherP99: o.Service.Latency.P99}
			big, small := c.P99, c.OtherP99
			if c.Users < c.OtherUsers {
				big, small = small, big
			}
			if small > 0 {
				c.Growth = float64(big) / float64(small)
			}
			out = append(out, c)
		}
	}
	return out
}

// Target is one of issue 7's targets and whether this run met it.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
}

// fewSamples flags a workload measured on too few requests to trust.
const fewSamples = 200

// Issue 7's absolute targets.
const (
	targetRelayPerS   = 10_000
	targetLagP99      = 100 * time.Millisecond
	targetRSS         = 100 << 20
	targetP99Growth   = 2.0
	targetGrowthUsers = 10 // compare only runs at least this many times apart in size
)

func evaluate(r *Results) []Target {
	var ts []Target
	for _, w := range r.Workloads {
		few := ""
		if n := min(w.Service.Requests, w.Raw.Requests); n < fewSamples {
			few = fmt.Sprintf(" (only %d requests on one side)", n)
		}
		sides := w.sideNames()
		if w.MinRatio > 0 {
			ts = append(ts, Target{Name: w.Name + " throughput vs " + sides[1], Want: fmt.Sprintf(">= %.0f%%", w.MinRatio*100),
				Got: fmt.Sprintf("%.0f%%", w.Ratio*100) + few, Pass: w.Ratio >= w.MinRatio})
		}
		if w.MaxMedianGap > 0 {
			ts = append(ts, Target{Name: w.Name + " p50 " + sides[0] + " vs " + sides[1], Want: fmt.Sprintf("within %.0f%%", w.MaxMedianGap*100),
				Got:  fmt.Sprintf("%.1f%% (%v vs %v ms)", w.MedianGap*100, w.Service.Latency.P50, w.Raw.Latency.P50) + few,
				Pass: w.Service.Latency.P50 > 0 && w.Raw.Latency.P50 > 0 && w.MedianGap <= w.MaxMedianGap})
		}
		ts = append(ts, Target{Name: w.Name + " errors", Want: "0",
			Got: fmt.Sprintf("%d (raw %d)", w.Service.Errors, w.Raw.Errors), Pass: w.Service.Errors == 0 && w.Raw.Errors == 0})
	}
	for _, c := range r.Compare {
		if c.Workload != "list" && c.Workload != "filter" {
			continue
		}
		lo, hi := min(c.Users, c.OtherUsers), max(c.Users, c.OtherUsers)
		if lo == 0 || hi/lo < targetGrowthUsers {
			continue
		}
		ts = append(ts, Target{Name: fmt.Sprintf("%s p99 at %d vs %d users", c.Workload, hi, lo), Want: fmt.Sprintf("<= %.0fx", targetP99Growth),
			Got: fmt.Sprintf("%.2fx", c.Growth), Pass: c.Growth <= targetP99Growth})
	}
	if r.RSS != nil {
		ts = append(ts, Target{Name: fmt.Sprintf("peak RSS with %d keep-alive connections", r.RSS.Conns), Want: "< 100 MiB",
			Got: mib(r.RSS.PeakBytes) + " MiB", Pass: r.RSS.PeakBytes > 0 && r.RSS.PeakBytes < targetRSS && r.RSS.PeakConns >= int64(r.RSS.Conns)})
		errs := r.RSS.Phase.Errors + r.RSS.Reads.Errors
		ts = append(ts, Target{Name: "rss check errors", Want: "0", Got: fmt.Sprint(errs), Pass: errs == 0})
	}
	if r.Relay != nil {
		ts = append(ts, Target{Name: "relay throughput", Want: fmt.Sprintf(">= %d events/s", targetRelayPerS),
			Got: fmt.Sprintf("%.0f events/s", r.Relay.EventsPerS), Pass: r.Relay.EventsPerS >= targetRelayPerS})
	}
	ts = append(ts, evaluateScale(r)...)
	if r.Lag != nil {
		ok := r.Lag.Errors == 0 && r.Lag.Unacked == 0 && r.Lag.Missed == 0 && time.Duration(r.Lag.Lag.P99) < targetLagP99
		ts = append(ts, Target{Name: fmt.Sprintf("event lag p99 at %.0f mutations/s", r.Lag.Rate), Want: "< 100 ms, no error",
			Got: fmt.Sprintf("%v ms (%d events, %d errors, %d missed, %d unacked)", r.Lag.Lag.P99, r.Lag.Events, r.Lag.Errors, r.Lag.Missed, r.Lag.Unacked), Pass: ok})
	}
	return ts
}

func printReport(w io.Writer, r *Results) {
	fmt.Fprintf(w, "\nusersvc load benchmark, %s\n", r.Date)
	m := r.Machine
	fmt.Fprintf(w, "machine: %d cores %s, %d MiB, Linux %s, %s; load average %s before, %s after\n",
		m.Cores, m.CPUModel, m.MemoryMiB, m.Kernel, m.GoVersion, strings.Join(m.LoadBefore, " "), strings.Join(m.LoadAfter, " "))
	if r.Options.CheapHash {
		fmt.Fprintln(w, "WARNING: -cheap-hash: argon2id runs with 64 KiB and 1 pass, not OWASP's parameters; create figures mean nothing")
	}
	fmt.Fprintf(w, "database: %s; %d users (%d last names), concurrency %d, %v per side in %d rounds (+%v warm-up each)\n",
		m.Database, r.Population.Users, r.Population.LastNames, r.Options.Concurrency, r.Options.Duration, r.Options.Rounds, r.Options.Warmup)
	if b := r.BufferPool; b != nil {
		fmt.Fprintf(w, "%s %s MiB, users table with its indexes %s MiB", cmp.Or(b.Name, innodbBufferPool), mib(b.Bytes), mib(b.TableBytes))
		switch b.HugePages {
		case hugePagesYes:
			fmt.Fprint(w, "; shared memory in huge pages")
		case hugePagesNo:
			fmt.Fprint(w, "; WARNING, shared memory not in huge pages: each connection takes a page fault the first time it reads each of its pages (reserve huge pages: test/load/README.md)")
		}
		switch {
		case b.TableBytes > b.Bytes && b.Name == sharedBuffers:
			fmt.Fprint(w, ": the table does not fit, so pages come from the OS page cache (set shared_buffers and restart the server)")
		case b.TableBytes > b.Bytes:
			fmt.Fprint(w, ": WARNING, the table does not fit, so reads wait for the disk (see -innodb-buffer-pool)")
		}
		fmt.Fprintln(w)
	}
	if len(r.Workloads) > 0 {
		fmt.Fprintln(w, "\nservice/raw compares requests per second; per CPU compares requests per CPU-second of this process and the database")
		fmt.Fprintln(w, "together (the service side pays the load generator too). CPU: cores used by this process / the database server / everything else.")
		fmt.Fprintln(w, "Rows with named sides compare two kinds of request to the service instead of the service and the raw baseline.")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "workload\tside\treq/s\tp50 ms\tp99 ms\tp99.9 ms\terrors\tservice/raw\tper CPU\tCPU self/db/other\t")
		for _, x := range r.Workloads {
			names := x.sideNames()
			for _, side := range []struct {
				name  string
				p     *Phase
				ratio string
				cpu   string
			}{{names[0], x.Service, fmt.Sprintf("%.2f", x.Ratio), fmt.Sprintf("%.2f", x.CPURatio)}, {names[1], x.Raw, "", ""}} {
				fmt.Fprintf(tw, "%s\t%s\t%.0f\t%v\t%v\t%v\t%d\t%s\t%s\t%v\t\n", x.Name, side.name, side.p.RPS,
					side.p.Latency.P50, side.p.Latency.P99, side.p.Latency.P999, side.p.Errors, side.ratio, side.cpu, side.p.CPU)
			}
		}
		tw.Flush()
		for _, x := range r.Workloads {
			if x.Concurrency != r.Options.Concurrency {
				fmt.Fprintf(w, "  %s: concurrency %d on each side\n", x.Name, x.Concurrency)
			}
			if n := min(x.Service.Requests, x.Raw.Requests); n < fewSamples {
				fmt.Fprintf(w, "  %s: only %d requests measured on one side (typical latency %v ms, %d rounds): a longer -duration makes it meaningful\n",
					x.Name, n, x.Typical, x.Rounds)
			}
			for _, s := range append(x.Service.ErrorSamples, x.Raw.ErrorSamples...) {
				fmt.Fprintf(w, "  %s error: %s\n", x.Name, s)
			}
		}
	}
	if x := r.RSS; x != nil {
		limit := "no GOMEMLIMIT"
		if x.GoMemLimit != "" {
			limit = "GOMEMLIMIT=" + x.GoMemLimit
		}
		fmt.Fprintf(w, "\npeak RSS of the usersvc binary (%s) with %d keep-alive connections (it held %d): %s MiB on the mixed workload (%.0f req/s, p99 %v ms, %d errors); %s MiB after start, %s MiB after reads only (get: %.0f req/s, p99 %v ms, %d errors)\n",
			limit, x.Conns, x.PeakConns, mib(x.PeakBytes), x.Phase.RPS, x.Phase.Latency.P99, x.Phase.Errors,
			mib(x.StartBytes), mib(x.ReadsPeakBytes), x.Reads.RPS, x.Reads.Latency.P99, x.Reads.Errors)
	}
	fmt.Fprintf(w, "peak RSS of this process over the whole run (service, load generator, raw baseline, seeding and broker): %s MiB\n", mib(r.PeakRSSBytes))
	if x := r.Relay; x != nil {
		fmt.Fprintf(w, "relay: %d committed outbox rows published and marked in %v: %.0f events/s (CPU %v)\n",
			x.Events, x.Drain.Round(time.Millisecond), x.EventsPerS, x.CPU)
		fmt.Fprintf(w, "  relay steps: %v\n", x.Relay)
	}
	if x := r.Lag; x != nil {
		fmt.Fprintf(w, "event lag at %.0f mutations/s for %v: commit -> broker ack p50 %v ms, p99 %v ms, p99.9 %v ms, max %v ms over %d events (request p99 %v ms; %d errors, %d missed starts, %d unacked)\n",
			x.Rate, x.Duration, x.Lag.P50, x.Lag.P99, x.Lag.P999, x.Lag.Max, x.Events, x.RequestP99, x.Errors, x.Missed, x.Unacked)
		fmt.Fprintf(w, "  relay steps: %v\n", x.Relay)
	}
	printScale(w, r)
	if len(r.Compare) > 0 {
		fmt.Fprintln(w, "\np99 against the other run:")
		for _, c := range r.Compare {
			fmt.Fprintf(w, "  %-7s %8d users %7v ms | %8d users %7v ms | larger/smaller table %.2fx\n", c.Workload, c.Users, c.P99, c.OtherUsers, c.OtherP99, c.Growth)
		}
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets (issues 7, 14, 15, 18, 20):")
		for _, t := range r.Targets {
			mark := "PASS"
			if !t.Pass {
				mark = "MISS"
			}
			fmt.Fprintf(w, "  %s  %-42s want %-18s got %s\n", mark, t.Name, t.Want, t.Got)
		}
	}
}

func writeJSON(path string, r *Results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serverVersion names the database server for the report.
func serverVersion(ctx context.Context, dbURL string) (string, error) {
	t, err := gormstore.ParseURL(dbURL)
	if err != nil {
		return "", err
	}
	q := "SELECT VERSION()"
	if t.Dialect == gormstore.DialectSQLite {
		q = "SELECT 'SQLite ' || sqlite_version()"
	}
	db, err := openRawPool(dbURL, 1)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	err = db.QueryRowContext(ctx, q).Scan(&v)
	return v, err
}
