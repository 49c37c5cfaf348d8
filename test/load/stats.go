package main

import (
	"math"
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"
)

// Histogram records durations in log-linear buckets: 64 buckets per power
// of two, so any percentile is within 1.6% of the true value, in a fixed
// 16 KiB whatever the number of samples. Record is safe for concurrent use
// (one atomic add), so all workers of a phase share one histogram and the
// memory it costs does not grow with the connection count being measured.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	// histMaxNanos clamps samples at about 68.7 s; a request never runs that long.
	histMaxExp  = 36
	histBuckets = (histMaxExp-histSubBits)*histSub + histSub
)

func bucketOf(ns int64) int {
	if ns < 0 {
		ns = 0
	}
	v := uint64(ns)
	if v >= 1<<histMaxExp {
		v = 1<<histMaxExp - 1
	}
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // v>>shift is in [64, 127]
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// bucketMid is the middle of bucket i's range, in nanoseconds.
func bucketMid(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	lo := int64(i%histSub+histSub) << shift
	return lo + (int64(1)<<shift)/2
}

// Record adds one sample.
func (h *Histogram) Record(d time.Duration) {
	h.counts[bucketOf(int64(d))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max is the largest sample.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the q-quantile (0 < q <= 1), 0 without samples.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(bucketMid(i)), h.Max())
		}
	}
	return h.Max()
}

// Merge adds other's samples to h.
func (h *Histogram) Merge(other *Histogram) {
	for i := range other.counts {
		if c := other.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(other.total.Load())
	for {
		m, o := h.max.Load(), other.max.Load()
		if o <= m || h.max.CompareAndSwap(m, o) {
			return
		}
	}
}

// Latency is the summary of a histogram that reports and JSON carry.
type Latency struct {
	P50  Millis `json:"p50_ms"`
	P99  Millis `json:"p99_ms"`
	P999 Millis `json:"p999_ms"`
	Max  Millis `json:"max_ms"`
}

// Summary gives p50, p99, p99.9 and max.
func (h *Histogram) Summary() Latency {
	return Latency{
		P50:  Millis(h.Quantile(0.50)),
		P99:  Millis(h.Quantile(0.99)),
		P999: Millis(h.Quantile(0.999)),
		Max:  Millis(h.Max()),
	}
}

// Millis is a duration written to JSON as fractional milliseconds, the
// unit of the table, so results files compare by eye.
type Millis time.Duration

func (m Millis) MarshalJSON() ([]byte, error) {
	v := math.Round(float64(m)/float64(time.Microsecond)) / 1000
	return strconv.AppendFloat(nil, v, 'f', -1, 64), nil
}

func (m *Millis) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*m = Millis(time.Duration(f * float64(time.Millisecond)))
	return nil
}

func (m Millis) String() string {
	d := time.Duration(m)
	switch {
	case d < 10*time.Millisecond:
		return fixed(float64(d)/float64(time.Millisecond), 2)
	case d < 100*time.Millisecond:
		return fixed(float64(d)/float64(time.Millisecond), 1)
	default:
		return fixed(float64(d)/float64(time.Millisecond), 0)
	}
}

func fixed(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
