// Package poolunit runs one pool of application instances for junction's
// composition root: a balancer.Pool, the instance backends in it (built
// once per address and kept while the address stays), the pool's health
// checks and, for a spawned pool, the spawn.Supervisor whose ready
// instances become the pool's members, or, for a discovered pool, the
// discovery.Watcher whose answers do (discovery.go).
//
// A Unit outlives configuration reloads that leave its pool in place: the
// root replaces a static instance list (Replace) or a spawned pool's
// command (Roll) on the running unit. It knows nothing of the
// configuration file; the root maps that to Options, and says which
// backend an error is about (the errors here do not).
package poolunit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/spawn"
	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/balancer/discovery"
)

// Options describe a unit.
type Options struct {
	// Name is the pool's name (the configured backend's).
	Name string
	// Pool are the balancer's options.
	Pool balancer.Options
	// Instances are a static pool's members without their Backend, which
	// the unit builds from each Name (the instance's address). A spawned
	// pool has none: the supervisor publishes its members.
	Instances []balancer.Instance
	// MaxConns bounds the concurrent requests on each spawned instance;
	// 0 is unlimited.
	MaxConns int
	// AutoMaxConns makes each spawned instance's capacity its bound, and
	// MaxConns the fallback (balancer.Instance.AutoMaxConns).
	AutoMaxConns bool
	// NewBackend builds the backend for the instance at addr.
	NewBackend func(addr string) (backends.Backend, error)
	// Spawn, if set, starts the instances: the pool's members are the
	// supervisor's ready instances. The unit sets its Logger, OnChange,
	// WaitIdle and, with CheckReady, Ready.
	Spawn *spawn.Options
	// CheckReady makes a spawned instance ready once its backend's Check
	// (balancer.Checker) passes; otherwise once it accepts a connection.
	CheckReady bool
	// Discovery, if set, finds the pool's members in DNS (discovery.go).
	// The unit sets its Apply; a discovered instance gets MaxConns.
	Discovery *discovery.Options
	// CheckNew makes a discovered instance join the pool only once its
	// backend's Check passes (set it when the pool's active checks are
	// on); until then it is listed as pending.
	CheckNew bool
	// CheckTimeout bounds that first check (the pool's health timeout).
	CheckTimeout time.Duration
	// Logger receives the unit's log lines; nil means slog.Default().
	Logger *slog.Logger
}

// Unit is one running pool. Its methods are safe for concurrent use.
type Unit struct {
	pool     *balancer.Pool
	sup      *spawn.Supervisor // nil for a static instance list
	log      *slog.Logger
	maxConns int
	autoMax  bool
	build    func(addr string) (backends.Backend, error)
	check    bool

	mu    sync.Mutex
	cache map[string]backends.Backend // instance backends by address
	spawn spawn.Options               // as last applied; Count decides readiness

	disc *discoverer // nil unless the members come from DNS

	ready     chan struct{} // closed at the first publish of every instance
	readyOnce sync.Once

	startOnce sync.Once
	cancel    context.CancelFunc // ends Run of the pool and supervisor
	wg        sync.WaitGroup     // those Runs
	stopOnce  sync.Once
}

// New builds the pool (and supervisor) that o describes. Nothing runs
// until Start.
func New(o Options) (*Unit, error) {
	u := &Unit{log: o.Logger, maxConns: o.MaxConns, autoMax: o.AutoMaxConns, build: o.NewBackend, check: o.CheckReady,
		cache: map[string]backends.Backend{}, ready: make(chan struct{})}
	if u.log == nil {
		u.log = slog.Default()
	}
	members, err := u.members(o.Instances)
	if err != nil {
		return nil, err
	}
	if u.pool, err = balancer.NewPool(o.Name, members, o.Pool); err != nil {
		return nil, err
	}
	if o.Discovery != nil {
		if u.disc, err = u.newDiscoverer(o); err != nil {
			return nil, err
		}
	}
	if o.Spawn == nil {
		u.readyOnce.Do(func() { close(u.ready) })
		return u, nil
	}
	u.spawn = u.spawnOptions(*o.Spawn)
	if u.sup, err = spawn.New(u.spawn); err != nil {
		return nil, err
	}
	return u, nil
}

// Pool returns the unit's pool.
func (u *Unit) Pool() *balancer.Pool { return u.pool }

// Supervisor returns the spawned pool's supervisor, or nil.
func (u *Unit) Supervisor() *spawn.Supervisor { return u.sup }

// spawnOptions completes o with the unit's hooks.
func (u *Unit) spawnOptions(o spawn.Options) spawn.Options {
	o.Logger = u.log
	o.OnChange = u.onChange
	o.WaitIdle = u.pool.WaitIdle
	if u.check {
		o.Ready = u.checkReady
	}
	return o
}

// checkReady is the spawn readiness probe: the instance backend's Check.
func (u *Unit) checkReady(ctx context.Context, addr string) error {
	b, err := u.instance(addr)
	if err != nil {
		return err
	}
	if c, ok := b.(balancer.Checker); ok {
		return c.Check(ctx)
	}
	return spawn.DialReady(ctx, addr)
}

// instance returns the backend for addr, building it on first use, so
// that a kept address keeps its backend (and the pool its state).
func (u *Unit) instance(addr string) (backends.Backend, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if b := u.cache[addr]; b != nil {
		return b, nil
	}
	b, err := u.build(addr)
	if err != nil {
		return nil, err
	}
	u.cache[addr] = b
	return b, nil
}

// members fills in each instance's backend.
func (u *Unit) members(list []balancer.Instance) ([]balancer.Instance, error) {
	out := make([]balancer.Instance, 0, len(list))
	var errs []error
	for _, in := range list {
		b, err := u.instance(in.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		in.Backend = b
		out = append(out, in)
	}
	return out, errors.Join(errs...)
}

// onChange follows the supervisor's ready instances.
func (u *Unit) onChange(addrs []string) {
	list := make([]balancer.Instance, len(addrs))
	for i, a := range addrs {
		list[i] = balancer.Instance{Name: a, MaxConns: u.maxConns, AutoMaxConns: u.autoMax}
	}
	insts, err := u.members(list)
	if err != nil {
		u.log.Error("spawned instance unusable", "err", err)
	}
	u.forget(addrs)
	if err := u.pool.Replace(insts); err != nil {
		u.log.Error("updating pool", "err", err)
		return
	}
	u.log.Info("pool instances", "addrs", addrs)
	u.mu.Lock()
	want := u.spawn.Count
	u.mu.Unlock()
	if len(insts) >= want {
		u.readyOnce.Do(func() { close(u.ready) })
	}
}

// forget drops cached backends for addresses no longer in keep (the pool
// closes its own copies once their requests finished).
func (u *Unit) forget(keep []string) {
	in := make(map[string]bool, len(keep))
	for _, a := range keep {
		in[a] = true
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for a := range u.cache {
		if !in[a] {
			delete(u.cache, a)
		}
	}
}

// Replace makes list (as Options.Instances) a static pool's members. On
// error the old list keeps serving.
func (u *Unit) Replace(list []balancer.Instance) error {
	insts, err := u.members(list)
	if err == nil {
		err = u.pool.Replace(insts)
	}
	if err != nil {
		return err
	}
	keep := make([]string, len(list))
	for i, in := range list {
		keep[i] = in.Name
	}
	u.forget(keep)
	return nil
}

// Roll replaces a spawned pool's instances with ones started by o, one at
// a time (spawn.Supervisor.Rolling): each new instance serves before its
// predecessor stops, and the predecessor finishes its requests first.
func (u *Unit) Roll(ctx context.Context, o spawn.Options) error {
	o = u.spawnOptions(o)
	if err := u.sup.Rolling(ctx, o); err != nil {
		return fmt.Errorf("replacing spawned instances: %w", err)
	}
	u.mu.Lock()
	u.spawn = o
	u.mu.Unlock()
	return nil
}

// Start runs the pool's health checks and the supervisor with goFn (the
// caller's errgroup). They run until Stop, not until the caller's context
// ends: spawned instances must outlive the listeners' graceful shutdown.
// A supervisor that cannot go on returns its error to goFn.
func (u *Unit) Start(goFn func(func() error)) {
	u.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		u.cancel = cancel
		u.wg.Add(1)
		goFn(func() error {
			defer u.wg.Done()
			return u.pool.Run(ctx)
		})
		if u.sup != nil {
			u.wg.Add(1)
			goFn(func() error {
				defer u.wg.Done()
				return u.sup.Run(ctx)
			})
		}
		if u.disc != nil {
			u.wg.Add(1)
			goFn(func() error {
				defer u.wg.Done()
				return u.disc.w.Run(ctx)
			})
		}
	})
}

// WaitReady waits until a spawned pool published all its instances, at
// most its start timeout and a second, or until a discovered pool's first
// lookup ended (and its instances passed their first check).
func (u *Unit) WaitReady(ctx context.Context) error {
	if u.disc != nil {
		return u.disc.waitFirst(ctx)
	}
	if u.sup == nil {
		return nil
	}
	u.mu.Lock()
	timeout := u.spawn.StartTimeout + time.Second
	u.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-u.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("spawned instances not ready after %v", timeout)
	}
}

// Drain waits (up to ctx) until no request is in flight in the pool.
func (u *Unit) Drain(ctx context.Context) {
	for _, in := range u.pool.Snapshot().Instances {
		if err := u.pool.WaitIdle(ctx, in.Name); err != nil {
			u.log.Warn("pool still busy when stopped", "err", err)
			return
		}
	}
}

// Stop ends the supervisor (stopping its processes) and the health
// checks, then closes the instance backends. Call it after the last
// request through the pool.
func (u *Unit) Stop() {
	u.stopOnce.Do(func() {
		if u.cancel != nil {
			u.cancel()
		}
		u.wg.Wait()
		if err := u.pool.Close(); err != nil {
			u.log.Warn("closing pool", "err", err)
		}
		if u.disc != nil {
			u.disc.closePending()
		}
	})
}
