package metrics

import "github.com/prometheus/client_golang/prometheus"

func newDiscoveryErrors(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "junction_discovery_errors_total",
		Help: "Failed DNS lookups of a discovered pool's instances (the pool kept its last good set), and SRV targets that did not resolve.",
	}, []string{"backend"})
	reg.MustRegister(c)
	return c
}

// DiscoveryError returns the function that counts the failed lookups of
// the pool named backend.
func (m *Metrics) DiscoveryError(backend string) func(error) {
	c := m.discovery.WithLabelValues(backend)
	return func(error) { c.Inc() }
}
