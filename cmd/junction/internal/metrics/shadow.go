package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/junction-gw/junction/balancer/shadow"
)

// newShadowTotal is junction_shadow_total{route, result}.
func newShadowTotal() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "junction_shadow_total",
		Help: "Shadowed requests by route (its prefix) and result: same, different, error (the shadow failed) or dropped (not sent: queue full, body too large).",
	}, []string{"route", "result"})
}

// Shadow returns the observer for the shadowed route with prefix route.
// Its counters survive reloads: a route keeps counting under its prefix.
func (m *Metrics) Shadow(route string) *ShadowObserver {
	o := &ShadowObserver{}
	for i, r := range shadowResults {
		o.c[i] = m.shadowTotal.WithLabelValues(route, r)
	}
	return o
}

var shadowResults = [...]string{shadow.Same, shadow.Different, shadow.Error, shadow.Dropped}

// ShadowObserver counts one route's shadow results.
type ShadowObserver struct {
	c [len(shadowResults)]prometheus.Counter
}

// Result counts one result.
func (o *ShadowObserver) Result(result string) {
	for i, r := range shadowResults {
		if r == result {
			o.c[i].Inc()
			return
		}
	}
}
