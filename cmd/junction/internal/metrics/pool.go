package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/junction-gw/junction/balancer"
)

// SetPoolSource sets the function read at every scrape for the state of
// the balancer pools (queue length, instance health, in-flight requests,
// ejections). The composition root sets it after building the pools and
// again after a reload; nil removes the pool metrics.
func (m *Metrics) SetPoolSource(snapshot func() []balancer.PoolStatus) {
	if snapshot == nil {
		m.pools.Store(nil)
		return
	}
	m.pools.Store(&snapshot)
}

// Pool returns the observer for events the pool named backend sees
// between scrapes: retries and queue waits.
func (m *Metrics) Pool(backend string) *PoolObserver {
	return &PoolObserver{
		retries:   m.retries.WithLabelValues(backend),
		queueWait: m.queueWait.WithLabelValues(backend),
	}
}

// PoolObserver counts one pool's retries and queue waits.
type PoolObserver struct {
	retries   prometheus.Counter
	queueWait prometheus.Observer
}

// Retried counts a request sent again to another instance.
func (o *PoolObserver) Retried() { o.retries.Inc() }

// QueueWaited records how long a request waited for a free instance.
func (o *PoolObserver) QueueWaited(d time.Duration) { o.queueWait.Observe(d.Seconds()) }

var (
	queueLenDesc = prometheus.NewDesc("junction_backend_queue_length",
		"Requests waiting for a free instance of the backend.", []string{"backend"}, nil)
	healthyDesc = prometheus.NewDesc("junction_instance_healthy",
		"1 when the instance takes new requests (not ejected, down or draining).", []string{"backend", "instance"}, nil)
	ejectionsDesc = prometheus.NewDesc("junction_instance_ejections_total",
		"Times passive health checks ejected the instance.", []string{"backend", "instance"}, nil)
	instInFlightDesc = prometheus.NewDesc("junction_instance_in_flight",
		"Requests the instance is serving now.", []string{"backend", "instance"}, nil)
	instRequestsDesc = prometheus.NewDesc("junction_instance_requests_total",
		"Attempts sent to the instance that reached a verdict.", []string{"backend", "instance"}, nil)
	instFailuresDesc = prometheus.NewDesc("junction_instance_failures_total",
		"Attempts on the instance that failed.", []string{"backend", "instance"}, nil)
)

// poolCollector reads the pool snapshot at scrape time, so pool state
// costs nothing between scrapes and is never stale.
type poolCollector struct{ m *Metrics }

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueLenDesc, healthyDesc, ejectionsDesc, instInFlightDesc, instRequestsDesc, instFailuresDesc} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.pools.Load()
	if src == nil {
		return
	}
	seenPool := make(map[string]bool)
	for _, p := range (*src)() {
		if seenPool[p.Name] {
			continue // a registry refuses duplicate series; names are unique in a valid config
		}
		seenPool[p.Name] = true
		ch <- prometheus.MustNewConstMetric(queueLenDesc, prometheus.GaugeValue, float64(p.QueueLen), p.Name)
		seen := make(map[string]bool)
		for _, in := range p.Instances {
			// A removed instance still finishing requests may share its
			// name with its replacement: report the live one.
			if seen[in.Name] || in.Removed {
				continue
			}
			seen[in.Name] = true
			healthy := 0.0
			if in.Healthy {
				healthy = 1
			}
			ch <- prometheus.MustNewConstMetric(healthyDesc, prometheus.GaugeValue, healthy, p.Name, in.Name)
			ch <- prometheus.MustNewConstMetric(ejectionsDesc, prometheus.CounterValue, float64(in.Ejections), p.Name, in.Name)
			ch <- prometheus.MustNewConstMetric(instInFlightDesc, prometheus.GaugeValue, float64(in.InFlight), p.Name, in.Name)
			ch <- prometheus.MustNewConstMetric(instRequestsDesc, prometheus.CounterValue, float64(in.Requests), p.Name, in.Name)
			ch <- prometheus.MustNewConstMetric(instFailuresDesc, prometheus.CounterValue, float64(in.Failures), p.Name, in.Name)
		}
	}
}
