package metrics

import (
	"time"

	"github.com/marketplace/usersvc/adapters/geocache"
)

// outcomeOther replaces an outcome outside geocache's Outcome* constants,
// so a future caller cannot grow the label set unnoticed.
const outcomeOther = "other"

// ObserveLookup records one geolocation provider call (geocache.Observer).
func (m *Metrics) ObserveLookup(provider, outcome string, d time.Duration) {
	switch outcome {
	case geocache.OutcomeLocated, geocache.OutcomeUnknown, geocache.OutcomeError:
	default:
		outcome = outcomeOther
	}
	m.geoLookups.WithLabelValues(provider, outcome).Inc()
	m.geoDuration.WithLabelValues(provider, outcome).Observe(d.Seconds())
}

// CacheHit counts a lookup answered from the cache (geocache.Observer).
func (m *Metrics) CacheHit() { m.geoHits.Inc() }

// CacheMiss counts a lookup the cache could not answer (geocache.Observer).
func (m *Metrics) CacheMiss() { m.geoMisses.Inc() }
