// Package metrics exposes junction's Prometheus metrics: requests per
// listener and backend, codec connections and decode errors, balancer
// pools and CGI processes, plus the Go runtime and process collectors.
//
// Everything registers on the Registerer given to New; nothing touches the
// default registry. Hooks for the codecs (CodecObserver), the CGI backend
// (CGIObserver) and the balancer (Pool, SetPoolSource) are plain values
// the composition root hands to those packages, so none of them imports
// Prometheus.
package metrics

import (
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/junction-gw/junction/balancer"
)

// Metrics holds junction's collectors. Its methods are safe for
// concurrent use.
type Metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	inFlight       *prometheus.GaugeVec
	requestBytes   *prometheus.CounterVec
	responseBytes  *prometheus.CounterVec
	queueWait      *prometheus.HistogramVec
	retries        *prometheus.CounterVec
	decodeErrors   *prometheus.CounterVec
	protocolEvents *prometheus.CounterVec
	connsOpen      *prometheus.GaugeVec
	cgiSpawns      *prometheus.CounterVec
	cgiExits       *prometheus.CounterVec
	cgiSignals     *prometheus.CounterVec
	cgiTimeouts    *prometheus.CounterVec
	cgiSpawnTime   *prometheus.HistogramVec
	shadowTotal    *prometheus.CounterVec
	authz          *prometheus.CounterVec

	pools atomic.Pointer[func() []balancer.PoolStatus]

	discovery *prometheus.CounterVec // discovery.go
}

// Latency buckets: a gateway in front of CGI scripts and app pools sees
// anything from sub-millisecond static answers to scripts running for
// tens of seconds.
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Process start buckets: fork+exec is around a millisecond; interpreters
// that load a lot can take a second.
var spawnBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// New creates junction's metrics and registers them, with the Go runtime
// and process collectors, on reg. It panics if a metric is already
// registered there (a programming error: call New once per registry).
func New(reg prometheus.Registerer) *Metrics {
	listener := []string{"listener", "protocol"}
	routed := []string{"listener", "protocol", "backend"}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_requests_total",
			Help: "Requests served, by listener, protocol, backend and status class (1xx..5xx).",
		}, append(routed, "code_class")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "junction_request_duration_seconds",
			Help:    "Time from the decoded request to the end of the response.",
			Buckets: durationBuckets,
		}, routed),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "junction_requests_in_flight",
			Help: "Requests being served now.",
		}, listener),
		requestBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_request_bytes_total",
			Help: "Request body bytes read by handlers.",
		}, routed),
		responseBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_response_bytes_total",
			Help: "Response body bytes written.",
		}, routed),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "junction_backend_queue_wait_seconds",
			Help:    "Time requests waited in a backend's queue for a free instance.",
			Buckets: durationBuckets,
		}, []string{"backend"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_retries_total",
			Help: "Requests retried on another instance.",
		}, []string{"backend"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_decode_errors_total",
			Help: "Connections closed or requests refused for what the front server sent, by reason.",
		}, []string{"protocol", "reason"}),
		protocolEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_protocol_events_total",
			Help: "Protocol events: FastCGI END_REQUEST protocolStatus, AJP CPINGs, refused secrets.",
		}, []string{"protocol", "event"}),
		connsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "junction_connections_open",
			Help: "Front-server connections open now.",
		}, listener),
		cgiSpawns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_cgi_spawns_total",
			Help: "CGI processes started.",
		}, []string{"backend"}),
		cgiExits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_cgi_exits_total",
			Help: "CGI processes that exited, by exit code.",
		}, []string{"backend", "code"}),
		cgiSignals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_cgi_signals_total",
			Help: "CGI processes ended by a signal.",
		}, []string{"backend", "signal"}),
		cgiTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_cgi_timeouts_total",
			Help: "CGI processes killed for running past their timeout.",
		}, []string{"backend"}),
		cgiSpawnTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "junction_cgi_spawn_seconds",
			Help:    "Time to start a CGI process.",
			Buckets: spawnBuckets,
		}, []string{"backend"}),
		shadowTotal: newShadowTotal(),
		authz: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_authorizer_requests_total",
			Help: "Requests a route's FastCGI authorizer decided, by route prefix and outcome (allowed, denied, error).",
		}, []string{"route", "outcome"}),
	}
	reg.MustRegister(
		m.requests, m.duration, m.inFlight, m.requestBytes, m.responseBytes,
		m.queueWait, m.retries, m.decodeErrors, m.protocolEvents, m.connsOpen,
		m.cgiSpawns, m.cgiExits, m.cgiSignals, m.cgiTimeouts, m.cgiSpawnTime,
		m.shadowTotal,
		m.authz,
		poolCollector{m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.discovery = newDiscoveryErrors(reg)
	return m
}

// codeClasses are the status class labels "1xx".."5xx" (and "other"), by
// codeClassIndex.
var codeClasses = [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// codeClassIndex is code's index in codeClasses.
func codeClassIndex(code int) int {
	if code < 100 || code > 599 {
		return 0
	}
	return code / 100
}

// CodecObserver returns the observer to set as Observer on an SCGI,
// FastCGI or AJP13 Server serving listener. Its method set is the codecs'
// Observer interface.
func (m *Metrics) CodecObserver(listener, protocol string) *CodecObserver {
	return &CodecObserver{
		open:   m.connsOpen.WithLabelValues(listener, protocol),
		errors: m.decodeErrors.MustCurryWith(prometheus.Labels{"protocol": protocol}),
		events: m.protocolEvents.MustCurryWith(prometheus.Labels{"protocol": protocol}),
	}
}

// CodecObserver counts one listener's connections, decode errors and
// protocol events.
type CodecObserver struct {
	open   prometheus.Gauge
	errors *prometheus.CounterVec
	events *prometheus.CounterVec
}

// ConnOpened counts a connection as open.
func (o *CodecObserver) ConnOpened() { o.open.Inc() }

// ConnClosed counts a connection as closed.
func (o *CodecObserver) ConnClosed() { o.open.Dec() }

// DecodeError counts a connection closed or request refused for reason.
func (o *CodecObserver) DecodeError(reason string) { o.errors.WithLabelValues(reason).Inc() }

// Event counts a protocol event.
func (o *CodecObserver) Event(name string) { o.events.WithLabelValues(name).Inc() }

// CGIObserver returns the observer for the CGI backend named backend; it
// has the method set of the CGI runner's Observer interface.
func (m *Metrics) CGIObserver(backend string) *CGIObserver {
	return &CGIObserver{
		spawns:   m.cgiSpawns.WithLabelValues(backend),
		spawn:    m.cgiSpawnTime.WithLabelValues(backend),
		timeouts: m.cgiTimeouts.WithLabelValues(backend),
		exits:    m.cgiExits.MustCurryWith(prometheus.Labels{"backend": backend}),
		signals:  m.cgiSignals.MustCurryWith(prometheus.Labels{"backend": backend}),
	}
}

// CGIObserver counts one CGI backend's processes.
type CGIObserver struct {
	spawns   prometheus.Counter
	spawn    prometheus.Observer
	timeouts prometheus.Counter
	exits    *prometheus.CounterVec
	signals  *prometheus.CounterVec
}

// Spawned counts a started process that took d to start.
func (o *CGIObserver) Spawned(d time.Duration) {
	o.spawns.Inc()
	o.spawn.Observe(d.Seconds())
}

// Exited counts a process that exited with code.
func (o *CGIObserver) Exited(code int) { o.exits.WithLabelValues(strconv.Itoa(code)).Inc() }

// Signaled counts a process ended by sig (a name such as "SIGKILL").
func (o *CGIObserver) Signaled(sig string) { o.signals.WithLabelValues(sig).Inc() }

// TimedOut counts a process killed for running past its timeout.
func (o *CGIObserver) TimedOut() { o.timeouts.Inc() }

// ConnState returns an http.Server ConnState hook that counts the open
// connections of an HTTP listener in junction_connections_open, as
// CodecObserver does for the other codecs.
func (m *Metrics) ConnState(listener, protocol string) func(net.Conn, http.ConnState) {
	open := m.connsOpen.WithLabelValues(listener, protocol)
	return func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Inc()
		case http.StateClosed, http.StateHijacked:
			open.Dec()
		}
	}
}
