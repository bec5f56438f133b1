package balancer

import (
	"slices"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/internal/spark"
)

// PoolStatus is a point-in-time view of a pool for the status page.
type PoolStatus struct {
	Name      string
	Policy    string
	QueueLen  int // requests waiting for a slot
	Instances []InstanceStatus
	// History is the pool's requests over the last 15 minutes, in
	// 10-second buckets, oldest first (package spark).
	History []spark.Point
}

// InstanceStatus describes one instance. Removed instances that still
// finish requests are listed with Removed set.
type InstanceStatus struct {
	Name     string
	Route    string
	Weight   int
	MaxConns int
	Backup   bool
	// Healthy means the instance may get new requests now: not ejected,
	// not down, not draining.
	Healthy      bool
	Ejected      bool      // passive health took it out
	EjectedUntil time.Time // when the current ejection ends
	Down         bool      // active health checks failed
	Draining     bool
	Removed      bool
	InFlight     int
	Ejections    int64 // times ejected
	Requests     int64 // attempts that reached a verdict
	Failures     int64
	LastError    string
	LastFailure  time.Time
	// Latency percentiles of the last latencyWindow attempts.
	P50, P90, P99 time.Duration
	// Source is where the instance came from: "static", "dns", "srv".
	Source string
	// Limit is the bound on requests in flight in force: the learned
	// capacity with AutoMaxConns, else MaxConns; 0 is none.
	Limit int
	// AutoMaxConns says Limit follows the instance's capacity.
	AutoMaxConns bool
	// Capacity is the instance's latest answer (with AutoMaxConns), its
	// Max 0 when it did not tell; CapacityKnown says an answer came.
	Capacity      backends.Capacity
	CapacityKnown bool
	// CapacityError is the latest probe's failure ("" after an answer),
	// CapacityTime when the latest probe ended.
	CapacityError string
	CapacityTime  time.Time
	// History is the instance's attempts over the last 15 minutes, in
	// 10-second buckets, oldest first.
	History []spark.Point
}

// Snapshot returns the pool's current state.
func (p *Pool) Snapshot() PoolStatus {
	st, series, lats := p.snapshot()
	// The histories and percentiles are computed outside the pool's lock:
	// the counters are atomic and the latencies were copied under it;
	// reading 90 buckets or sorting 512 durations per instance is not for
	// every request to wait on (a discovered pool may have hundreds).
	now := p.clock.Now()
	st.History = p.spark.Points(now)
	for i, s := range series {
		is := &st.Instances[i]
		is.History = s.Points(now)
		is.P50, is.P90, is.P99 = percentiles(lats[i])
	}
	return st
}

func (p *Pool) snapshot() (PoolStatus, []*spark.Series, [][]time.Duration) {
	var series []*spark.Series
	var lats [][]time.Duration
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	st := PoolStatus{Name: p.name, Policy: p.o.Policy, QueueLen: len(p.queue)}
	for _, u := range append(append([]*upstream(nil), p.ups...), p.retiring...) {
		ejected := now.Before(u.ejectedUntil)
		is := InstanceStatus{
			Name: u.Name, Route: u.Route, Weight: u.Weight, MaxConns: u.MaxConns, Backup: u.Backup,
			Healthy: !ejected && !u.down && !u.draining,
			Ejected: ejected, Down: u.down, Draining: u.draining, Removed: u.removed,
			InFlight: u.inflight, Ejections: u.ejections, Requests: u.requests, Failures: u.failures,
			LastError: u.lastErr, LastFailure: u.lastFail,
		}
		if ejected {
			is.EjectedUntil = u.ejectedUntil
		}
		lats = append(lats, slices.Clone(u.lat.buf))
		is.Source, is.Limit, is.AutoMaxConns = u.Source, u.limit(), u.AutoMaxConns
		if is.Source == "" {
			is.Source = "static"
		}
		cs := u.capacity
		is.Capacity, is.CapacityKnown, is.CapacityError, is.CapacityTime = cs.last, cs.known, cs.err, cs.at
		st.Instances = append(st.Instances, is)
		series = append(series, u.spark)
	}
	return st, series, lats
}

// latencyWindow is how many recent attempts the percentiles cover: enough
// for a stable p99, small enough to follow change.
const latencyWindow = 512

// latencyRing keeps the latest latencyWindow durations.
type latencyRing struct {
	buf  []time.Duration
	next int
}

func (l *latencyRing) add(d time.Duration) {
	if len(l.buf) < latencyWindow {
		l.buf = append(l.buf, d)
		return
	}
	l.buf[l.next] = d
	l.next = (l.next + 1) % latencyWindow
}

// percentiles sorts s (a copy of a ring's durations) and reads its 50th,
// 90th and 99th percentiles.
func percentiles(s []time.Duration) (p50, p90, p99 time.Duration) {
	if len(s) == 0 {
		return 0, 0, 0
	}
	slices.Sort(s)
	at := func(q int) time.Duration { return s[(len(s)-1)*q/100] }
	return at(50), at(90), at(99)
}
