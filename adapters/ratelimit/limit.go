// Package ratelimit implements ports.RateLimiter: in memory per replica
// (golang.org/x/time/rate), or shared by every replica through Redis (an
// atomic GCRA script) when a Redis URL is configured.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limit is a rate with a burst: Events per Per on average, up to Burst at
// once after a quiet spell. The zero Limit is off (no limit).
type Limit struct {
	Events int
	Per    time.Duration
	Burst  int
}

// Off reports whether the limit lets everything through.
func (l Limit) Off() bool { return l.Events == 0 }

// interval is the time one event's allowance takes to come back.
func (l Limit) interval() time.Duration { return l.Per / time.Duration(l.Events) }

func (l Limit) String() string {
	if l.Off() {
		return "off"
	}
	return fmt.Sprintf("%d/%s,burst=%d", l.Events, l.Per, l.Burst)
}

const maxCount = 1_000_000

// ParseLimit reads RATE_LIMIT_* syntax: "off", or "N/PERIOD" with an
// optional ",burst=B". PERIOD is s, m or h (one second, minute, hour) or a
// Go duration such as 30s or 15m; the burst defaults to N. "10/m" is ten
// a minute, all ten at once at most; "10/m,burst=3" spreads them, three
// at once at most, then one every 6 s.
func ParseLimit(s string) (Limit, error) {
	const syntax = `want "off" or N/PERIOD[,burst=B], e.g. 10/m or 100/h,burst=20 (PERIOD: s, m, h or a duration such as 30s)`
	s = strings.TrimSpace(s)
	if s == "off" {
		return Limit{}, nil
	}
	rateText, burstText, hasBurst := strings.Cut(s, ",")
	countText, periodText, ok := strings.Cut(rateText, "/")
	if !ok {
		return Limit{}, fmt.Errorf("%q: %s", s, syntax)
	}
	n, err := strconv.Atoi(strings.TrimSpace(countText))
	if err != nil || n < 1 || n > maxCount {
		return Limit{}, fmt.Errorf("%q: the count must be an integer from 1 to %d; %s", s, maxCount, syntax)
	}
	per, err := parsePeriod(strings.TrimSpace(periodText))
	if err != nil {
		return Limit{}, fmt.Errorf("%q: %w; %s", s, err, syntax)
	}
	if per/time.Duration(n) < time.Millisecond {
		return Limit{}, fmt.Errorf("%q: more than one event per millisecond", s)
	}
	l := Limit{Events: n, Per: per, Burst: n}
	if hasBurst {
		b, ok := strings.CutPrefix(strings.TrimSpace(burstText), "burst=")
		l.Burst, err = strconv.Atoi(b)
		if !ok || err != nil || l.Burst < 1 || l.Burst > maxCount {
			return Limit{}, fmt.Errorf("%q: the burst must be burst=B with B from 1 to %d; %s", s, maxCount, syntax)
		}
	}
	return l, nil
}

func parsePeriod(p string) (time.Duration, error) {
	switch p {
	case "s":
		return time.Second, nil
	case "m":
		return time.Minute, nil
	case "h":
		return time.Hour, nil
	}
	d, err := time.ParseDuration(p)
	if err != nil || d < time.Second || d > 24*time.Hour {
		return 0, fmt.Errorf("the period %q is not s, m, h or a duration from 1s to 24h", p)
	}
	return d, nil
}
