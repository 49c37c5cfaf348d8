package metrics

import (
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/marketplace/usersvc/adapters/httpapi"
	"github.com/marketplace/usersvc/adapters/jwtauth"
	"github.com/marketplace/usersvc/domain"
)

var (
	_ httpapi.AuthObserver = (*Metrics)(nil)
	_ jwtauth.Observer     = (*Metrics)(nil)
)

// authReasons is the closed label set of refused requests.
var authReasons = func() []string {
	var out []string
	for _, r := range domain.AuthReasons() {
		out = append(out, string(r))
	}
	return append(out, httpapi.ReasonScope)
}()

// authMetrics are the authentication series.
type authMetrics struct {
	authFailures *prometheus.CounterVec
	jwksFetches  *prometheus.CounterVec
	jwksLastOK   prometheus.Gauge
}

func newAuthMetrics() authMetrics {
	a := authMetrics{
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "auth_failures_total",
			Help:      "API requests refused by authentication or authorisation, by reason (" + strings.Join(authReasons, ", ") + ").",
		}, []string{"reason"}),
		jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "jwks_fetches_total",
			Help:      "Fetches of the token issuer's key set (JWKS), by result (success, error).",
		}, []string{"result"}),
		jwksLastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "jwks_last_success_timestamp_seconds",
			Help:      "Unix time of the last successful key set fetch (0: none yet).",
		}),
	}
	// Every series exists from the start, so rate() and alerts see zeros.
	for _, r := range authReasons {
		a.authFailures.WithLabelValues(r)
	}
	for _, r := range []string{jwtauth.FetchSuccess, jwtauth.FetchError} {
		a.jwksFetches.WithLabelValues(r)
	}
	return a
}

func (a authMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{a.authFailures, a.jwksFetches, a.jwksLastOK}
}

// AuthFailed counts a refused request (httpapi.AuthObserver).
func (m *Metrics) AuthFailed(reason string) {
	if !slices.Contains(authReasons, reason) {
		reason = outcomeOther
	}
	m.authFailures.WithLabelValues(reason).Inc()
}

// ObserveKeySetFetch counts a key set fetch (jwtauth.Observer).
func (m *Metrics) ObserveKeySetFetch(result string, at time.Time) {
	if result != jwtauth.FetchSuccess {
		result = jwtauth.FetchError
	}
	m.jwksFetches.WithLabelValues(result).Inc()
	if !at.IsZero() {
		m.jwksLastOK.Set(float64(at.UnixNano()) / 1e9)
	}
}
