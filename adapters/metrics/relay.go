package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// relayCollector reads one Stats snapshot per scrape, so the series of a
// scrape agree with each other and nothing is copied in between.
type relayCollector struct {
	src RelayStatsSource

	backlog, oldestAge, checkedAt *prometheus.Desc
	published, failures           *prometheus.Desc
}

func newRelayCollector(src RelayStatsSource) *relayCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil)
	}
	return &relayCollector{
		src:       src,
		backlog:   desc("outbox_backlog", "Unpublished outbox messages at the relay's last check."),
		oldestAge: desc("outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished outbox message at the relay's last check (0 when none)."),
		checkedAt: desc("outbox_last_check_timestamp_seconds", "Unix time of the relay's last backlog check."),
		published: desc("events_published_total", "Events the broker acknowledged, since this process started."),
		failures:  desc("events_publish_failures_total", "Relay drain attempts (read, publish or mark) that failed, since this process started."),
	}
}

func (c *relayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.oldestAge
	ch <- c.checkedAt
	ch <- c.published
	ch <- c.failures
}

func (c *relayCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	// Before its first check the relay knows no backlog: an absent series
	// says so, a 0 would claim an empty outbox.
	if !s.CheckedAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(s.Backlog))
		ch <- prometheus.MustNewConstMetric(c.oldestAge, prometheus.GaugeValue, s.OldestAge.Seconds())
		ch <- prometheus.MustNewConstMetric(c.checkedAt, prometheus.GaugeValue, float64(s.CheckedAt.UnixNano())/1e9)
	}
	ch <- prometheus.MustNewConstMetric(c.published, prometheus.CounterValue, float64(s.Published))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(s.FailedAttempts))
}
