package balancer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/internal/spark"
)

// Instance is one member of a Pool.
type Instance struct {
	// Name identifies the instance (usually its address) in logs, status
	// and the sticky cookie. Names are unique within a pool.
	Name string
	// Route is the instance's session route, as a Tomcat jvmRoute: a
	// session id "xyz.ROUTE" (JSESSIONID cookie or ";jsessionid=" path
	// parameter) goes to the instance whose Route is ROUTE.
	Route string
	// Backend serves the requests. It may implement Checker (active
	// health) and io.Closer (closed when the pool drops the instance).
	Backend backends.Backend
	// Weight is the share for weighted_round_robin and least_conn
	// (default 1).
	Weight int
	// MaxConns bounds concurrent requests on the instance; 0 is unlimited.
	MaxConns int
	// Backup instances get requests only while no other instance is
	// available.
	Backup bool
	// AutoMaxConns bounds the instance's concurrent requests by the
	// capacity its Backend reports (a CapacityProber, asked after each
	// passing health check); MaxConns is the fallback while the capacity
	// is unknown.
	AutoMaxConns bool
	// Source says where the instance came from, for the status page:
	// "static" (the default when empty), "dns", "srv".
	Source string
}

// Checker is implemented by backends that can probe their instance in its
// own protocol (an HTTP GET, a FastCGI request). A nil error means healthy.
type Checker interface {
	Check(ctx context.Context) error
}

// HealthOptions configure active health checks.
type HealthOptions struct {
	// Interval between check rounds; 0 disables active checks.
	Interval time.Duration
	// Timeout bounds one check (default: Interval, at most 5s).
	Timeout time.Duration
	// Rise is the number of consecutive passing checks that bring a down
	// instance back (default 2, as HAProxy).
	Rise int
	// Fall is the number of consecutive failing checks that take an
	// instance down (default 3, as HAProxy).
	Fall int
}

// Options configure a Pool. The zero value is round robin with passive
// health and no queue.
type Options struct {
	// Policy chooses among available instances: "round_robin" (default),
	// "weighted_round_robin" (smooth, as nginx), "least_conn" (fewest
	// in-flight requests per weight), "random_two" (the less busy of two
	// random instances) or "hash" (rendezvous hashing on HashKey).
	Policy string
	// HashKey is the hash policy's key: "ip" (client address from
	// RemoteAddr), "header:Name" or "cookie:Name". Requests without the
	// key fall back to round robin.
	HashKey string
	// StickyCookie, when set, names a cookie junction sets to the chosen
	// instance (an opaque hash of its name) and honors while that
	// instance is available.
	StickyCookie string
	// RouteCookie is the session cookie carrying "id.ROUTE" for
	// instances with a Route (default "JSESSIONID"); its lower-cased name
	// is also looked up as a path parameter (";jsessionid=id.ROUTE").
	RouteCookie string
	// MaxAttempts bounds tries per request, each on a different instance
	// (default: the number of instances, so every instance at most once).
	MaxAttempts int
	// QueueSize is how many requests may wait when every candidate is at
	// MaxConns; 0 answers ErrOverloaded at once.
	QueueSize int
	// QueueTimeout bounds the wait in the queue (default 10s).
	QueueTimeout time.Duration
	// FailThreshold is the number of consecutive failed requests that
	// eject an instance (default 3); negative disables passive health.
	FailThreshold int
	// EjectBase is the first ejection's length (default 1s); each further
	// ejection without a success in between doubles it, up to EjectMax
	// (default 1m).
	EjectBase, EjectMax time.Duration
	// Health configures active checks, run by Pool.Run.
	Health HealthOptions
	// Clock is the time source; nil is real time.
	Clock Clock
	// Rand returns a random int in [0, n); nil uses math/rand/v2.
	Rand func(n int) int
	// Logger receives state changes (ejections, health transitions).
	Logger *slog.Logger
	// Observer, when set, is told about retries and queue waits (for
	// metrics).
	Observer Observer
}

// Observer receives a pool's per-request events. Its methods are called
// from request goroutines, concurrently, and must not block.
type Observer interface {
	// Retried reports a request sent again, to another instance, after a
	// failed attempt.
	Retried()
	// QueueWaited reports how long a request that found every candidate
	// busy waited in the queue, whether it then got an instance or not.
	QueueWaited(d time.Duration)
}

// noObserver is the Observer when none is set.
type noObserver struct{}

func (noObserver) Retried()                  {}
func (noObserver) QueueWaited(time.Duration) {}

// Policy names.
const (
	RoundRobin         = "round_robin"
	WeightedRoundRobin = "weighted_round_robin"
	LeastConn          = "least_conn"
	RandomTwo          = "random_two"
	Hash               = "hash"
)

// Pool is a backends.Backend that spreads requests over instances,
// retries failed attempts elsewhere, queues when every instance is busy
// and takes failing instances out of rotation.
type Pool struct {
	name    string
	o       Options
	clock   Clock
	rand    func(int) int
	log     *slog.Logger
	hashKey func(*http.Request) string

	mu       sync.Mutex
	ups      []*upstream // current set, in configuration order
	retiring []*upstream // removed but still serving in-flight requests
	rr       int         // round-robin cursor (index into ups)
	queue    []*waiter
	routes   bool // some instance has a Route

	spark *spark.Series // the pool's requests, for the status page
	// joined wakes Run when Replace added an instance whose capacity is
	// to be asked (upstream.unprobed).
	joined chan struct{}
}

// upstream is an instance and its state; fields below the line are
// guarded by Pool.mu.
type upstream struct {
	Instance
	cookie string // sticky cookie value
	idx    int    // position in Pool.ups

	inflight       int
	draining       bool
	removed        bool
	fails          int // consecutive failed requests
	backoff        int // ejections since the last success
	ejectedUntil   time.Time
	ejections      int64
	down           bool // active checks say down
	okRun, failRun int  // consecutive check results
	requests       int64
	failures       int64
	lastFail       time.Time
	lastErr        string
	cw             int // smooth weighted round robin current weight
	lat            latencyRing
	idle           chan struct{} // closed when inflight drops to 0
	capacity       capacityState
	unprobed       bool // AutoMaxConns, and not in a check round yet
	// spark records the attempts for the status page's sparklines; set
	// once when the upstream is made, recorded into without the lock.
	spark *spark.Series
}

func (u *upstream) available(now time.Time) bool {
	return !u.down && !now.Before(u.ejectedUntil)
}

func (u *upstream) hasRoom() bool { l := u.limit(); return l <= 0 || u.inflight < l }

// NewPool checks the instances and options and returns a pool named name
// (for logs and status).
func NewPool(name string, insts []Instance, o Options) (*Pool, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("balancer: pool %q: %w", name, err)
	}
	o.setDefaults()
	p := &Pool{name: name, o: o, clock: o.Clock, rand: o.Rand, log: o.Logger, spark: new(spark.Series),
		joined: make(chan struct{}, 1)}
	if p.clock == nil {
		p.clock = realClock{}
	}
	if p.rand == nil {
		p.rand = rand.IntN
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.o.Observer == nil {
		p.o.Observer = noObserver{}
	}
	p.log = p.log.With("pool", name)
	p.hashKey = hashKeyFunc(o.HashKey)
	if err := p.Replace(insts); err != nil {
		return nil, err
	}
	return p, nil
}

func (o *Options) validate() error {
	var errs []error
	switch o.Policy {
	case "", RoundRobin, WeightedRoundRobin, LeastConn, RandomTwo:
	case Hash:
		if hashKeyFunc(o.HashKey) == nil {
			errs = append(errs, fmt.Errorf("hash_key %q: want ip, header:Name or cookie:Name", o.HashKey))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown policy %q", o.Policy))
	}
	if o.QueueSize < 0 || o.MaxAttempts < 0 || o.QueueTimeout < 0 || o.EjectBase < 0 || o.EjectMax < 0 {
		errs = append(errs, errors.New("negative queue size, attempts or durations"))
	}
	h := o.Health
	if h.Interval < 0 || h.Timeout < 0 || h.Rise < 0 || h.Fall < 0 {
		errs = append(errs, errors.New("negative health option"))
	}
	return errors.Join(errs...)
}

func (o *Options) setDefaults() {
	if o.Policy == "" {
		o.Policy = RoundRobin
	}
	if o.RouteCookie == "" {
		o.RouteCookie = "JSESSIONID" // the servlet session cookie mod_jk routes on
	}
	if o.QueueTimeout == 0 {
		o.QueueTimeout = 10 * time.Second // long enough for a burst, shorter than client patience
	}
	if o.FailThreshold == 0 {
		o.FailThreshold = 3 // one stray error must not eject an instance
	}
	if o.EjectBase == 0 {
		o.EjectBase = time.Second // a restarting app is usually back within seconds
	}
	if o.EjectMax == 0 {
		o.EjectMax = time.Minute // a dead instance is still probed once a minute
	}
	if o.EjectMax < o.EjectBase {
		o.EjectMax = o.EjectBase
	}
	h := &o.Health
	if h.Timeout == 0 {
		h.Timeout = min(h.Interval, 5*time.Second) // a check must end before the next one starts
	}
	if h.Rise == 0 {
		h.Rise = 2
	}
	if h.Fall == 0 {
		h.Fall = 3
	}
}

// Replace swaps the instance set atomically. Instances whose Name and
// Backend match a current one keep their state; removed instances get no
// new requests, finish their in-flight ones and are then closed (if their
// Backend is an io.Closer).
func (p *Pool) Replace(insts []Instance) error {
	seen := make(map[string]bool, len(insts))
	for i, in := range insts {
		switch {
		case in.Name == "":
			return fmt.Errorf("balancer: pool %q: instance %d has no name", p.name, i)
		case in.Backend == nil:
			return fmt.Errorf("balancer: pool %q: instance %q has no backend", p.name, in.Name)
		case seen[in.Name]:
			return fmt.Errorf("balancer: pool %q: duplicate instance %q", p.name, in.Name)
		case in.Weight < 0 || in.MaxConns < 0:
			return fmt.Errorf("balancer: pool %q: instance %q: negative weight or max_conns", p.name, in.Name)
		}
		seen[in.Name] = true
	}
	var closers []io.Closer
	joined := false
	p.mu.Lock()
	old := make(map[string]*upstream, len(p.ups))
	for _, u := range p.ups {
		old[u.Name] = u
	}
	next := make([]*upstream, 0, len(insts))
	p.routes = false
	for i, in := range insts {
		if in.Weight == 0 {
			in.Weight = 1
		}
		u := old[in.Name]
		if u != nil && sameBackend(u.Backend, in.Backend) {
			delete(old, in.Name)
			// Name and Backend stay (Serve reads them without the lock).
			u.Route, u.Weight, u.MaxConns, u.Backup = in.Route, in.Weight, in.MaxConns, in.Backup
			u.AutoMaxConns, u.Source = in.AutoMaxConns, in.Source
		} else {
			sum := sha256.Sum256([]byte(in.Name))
			u = &upstream{Instance: in, cookie: hex.EncodeToString(sum[:8]), spark: new(spark.Series)}
		}
		u.idx = i
		p.routes = p.routes || in.Route != ""
		if u.AutoMaxConns && !u.capacity.known && u.capacity.at.IsZero() {
			u.unprobed, joined = true, true
		}
		next = append(next, u)
	}
	for _, u := range old {
		u.removed, u.draining = true, true
		if u.inflight > 0 {
			p.retiring = append(p.retiring, u)
		} else if c := closerOf(u.Backend, insts); c != nil {
			closers = append(closers, c)
		}
	}
	p.ups = next
	p.rr = 0
	p.dispatchLocked()
	p.mu.Unlock()
	if joined {
		select {
		case p.joined <- struct{}{}:
		default: // Run has a wake-up pending
		}
	}
	p.closeAll(closers)
	return nil
}

// sameBackend reports whether a and b are the same comparable value.
func sameBackend(a, b backends.Backend) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	return va.Type() == vb.Type() && va.Comparable() && va.Equal(vb)
}

// closerOf returns b as an io.Closer unless b is still used by one of insts.
func closerOf(b backends.Backend, insts []Instance) io.Closer {
	c, ok := b.(io.Closer)
	if !ok {
		return nil
	}
	for _, in := range insts {
		if sameBackend(b, in.Backend) {
			return nil
		}
	}
	return c
}

func (p *Pool) closeAll(cs []io.Closer) {
	for _, c := range cs {
		if err := c.Close(); err != nil {
			p.log.Warn("closing removed instance", "err", err)
		}
	}
}

// Close closes every instance backend that is an io.Closer. Call it after
// the last request.
func (p *Pool) Close() error {
	p.mu.Lock()
	var errs []error
	all := append(append([]*upstream(nil), p.ups...), p.retiring...)
	p.mu.Unlock()
	for _, u := range all {
		if c, ok := u.Backend.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("balancer: close %q: %w", u.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Drain stops sending new requests to the named instance; in-flight
// requests finish. It reports whether the instance exists.
func (p *Pool) Drain(name string) bool { return p.setDraining(name, true) }

// Undrain puts a drained instance back into rotation.
func (p *Pool) Undrain(name string) bool { return p.setDraining(name, false) }

func (p *Pool) setDraining(name string, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.ups {
		if u.Name == name {
			u.draining = on
			p.dispatchLocked()
			return true
		}
	}
	return false
}

// WaitIdle blocks until the named instance (current or removed) has no
// in-flight requests, or ctx ends. An unknown name is idle.
func (p *Pool) WaitIdle(ctx context.Context, name string) error {
	for {
		p.mu.Lock()
		var ch chan struct{}
		for _, u := range append(append([]*upstream(nil), p.ups...), p.retiring...) {
			if u.Name == name && u.inflight > 0 {
				if u.idle == nil {
					u.idle = make(chan struct{})
				}
				ch = u.idle
				break
			}
		}
		p.mu.Unlock()
		if ch == nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("balancer: waiting for %q to drain: %w", name, ctx.Err())
		}
	}
}
