package metrics

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestDiscoveryErrors(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	count := m.DiscoveryError("app")
	count(errors.New("lookup failed"))
	count(errors.New("lookup failed"))
	m.DiscoveryError("other")(errors.New("x"))
	mustValue(t, reg, "junction_discovery_errors_total", map[string]string{"backend": "app"}, 2)
	mustValue(t, reg, "junction_discovery_errors_total", map[string]string{"backend": "other"}, 1)
}
