package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/fastcgi"
	httpbackend "github.com/junction-gw/junction/backends/httpbackend"
	"github.com/junction-gw/junction/backends/spawn"
	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/config"
)

// poolUnit is one http or fastcgi backend: a balancer.Pool with one
// instance backend per address, and for spawned pools the supervisor whose
// running instances the pool follows. A unit survives a reload that leaves
// its configuration (spawn aside) unchanged.
type poolUnit struct {
	name string
	cfg  config.Backend // instances and spawn as last applied
	pool *balancer.Pool
	sup  *spawn.Supervisor // nil for a static instance list
	log  *slog.Logger

	mu    sync.Mutex
	cache map[string]backends.Backend // instance backends by address

	ready     chan struct{} // closed at the first publish of every instance
	readyOnce sync.Once

	startOnce sync.Once
	cancel    context.CancelFunc // ends Run of the pool and supervisor
	wg        sync.WaitGroup     // those Runs
	stopOnce  sync.Once
}

// newPoolUnit builds the pool (and supervisor) for an http or fastcgi
// backend. Nothing runs until start.
func newPoolUnit(name string, bc *config.Backend, log *slog.Logger, obs balancer.Observer) (*poolUnit, error) {
	u := &poolUnit{name: name, cfg: *bc, log: log.With("backend", name),
		cache: map[string]backends.Backend{}, ready: make(chan struct{})}
	insts, err := u.instances(bc.Instances)
	if err != nil {
		return nil, err
	}
	po := poolOptions(bc, u.log)
	po.Observer = obs
	u.pool, err = balancer.NewPool(name, insts, po)
	if err != nil {
		return nil, err
	}
	if bc.Spawn != nil {
		u.sup, err = spawn.New(u.spawnOptions(bc.Spawn))
		if err != nil {
			return nil, err
		}
	} else {
		u.readyOnce.Do(func() { close(u.ready) })
	}
	return u, nil
}

func poolOptions(bc *config.Backend, log *slog.Logger) balancer.Options {
	h := bc.Health
	return balancer.Options{
		Policy:        bc.Balance,
		HashKey:       bc.HashKey,
		StickyCookie:  bc.StickyCookie,
		MaxAttempts:   bc.MaxAttempts,
		QueueSize:     bc.QueueSize,
		QueueTimeout:  bc.QueueTimeout,
		FailThreshold: h.FailThreshold,
		EjectBase:     h.EjectBase,
		EjectMax:      h.EjectMax,
		Health:        balancer.HealthOptions{Interval: h.Interval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall},
		Logger:        log,
	}
}

func (u *poolUnit) spawnOptions(sc *config.Spawn) spawn.Options {
	o := spawn.Options{
		Command:      sc.Command,
		Count:        sc.Count,
		Mode:         sc.Mode,
		Dir:          sc.Dir,
		Env:          sc.Env,
		PassEnv:      sc.PassEnv,
		RestartBase:  sc.RestartBase,
		RestartMax:   sc.RestartMax,
		StartTimeout: sc.StartTimeout,
		StopTimeout:  sc.StopTimeout,
		Logger:       u.log,
		OnChange:     u.onChange,
		WaitIdle:     u.pool.WaitIdle,
	}
	// A FastCGI instance always answers GET_VALUES; an HTTP one is asked
	// its health path only when one is configured (its "/" may well be a
	// 404). Otherwise a connect is enough.
	if u.cfg.Type == config.BackendFastCGI || u.cfg.Health.Path != "" {
		o.Ready = u.checkReady
	}
	return o
}

// checkReady is the spawn readiness probe: the instance backend's Check.
func (u *poolUnit) checkReady(ctx context.Context, addr string) error {
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
func (u *poolUnit) instance(addr string) (backends.Backend, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if b := u.cache[addr]; b != nil {
		return b, nil
	}
	b, err := newInstance(&u.cfg, addr, u.log)
	if err != nil {
		return nil, err
	}
	u.cache[addr] = b
	return b, nil
}

// instances builds the pool members for a configured instance list.
func (u *poolUnit) instances(list []config.Instance) ([]balancer.Instance, error) {
	out := make([]balancer.Instance, 0, len(list))
	var errs []error
	for _, in := range list {
		b, err := u.instance(in.Address)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		mc := in.MaxConns
		if mc == 0 {
			mc = u.cfg.MaxConns
		}
		out = append(out, balancer.Instance{Name: in.Address, Route: in.Route, Backend: b,
			Weight: in.Weight, MaxConns: mc, Backup: in.Backup})
	}
	return out, errors.Join(errs...)
}

// onChange follows the supervisor's ready instances.
func (u *poolUnit) onChange(addrs []string) {
	list := make([]config.Instance, len(addrs))
	for i, a := range addrs {
		list[i] = config.Instance{Address: a}
	}
	insts, err := u.instances(list)
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
	want := u.cfg.Spawn.Count
	u.mu.Unlock()
	if len(insts) >= want {
		u.readyOnce.Do(func() { close(u.ready) })
	}
}

// forget drops cached backends for addresses no longer in keep (the pool
// closes its own copies once their requests finished).
func (u *poolUnit) forget(keep []string) {
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

// start runs the pool's health checks and the supervisor with goFn (the
// app's errgroup). They run until stop, not until the app's context ends:
// spawned instances must outlive the listeners' graceful shutdown.
func (u *poolUnit) start(goFn func(func() error)) {
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
				if err := u.sup.Run(ctx); err != nil {
					return fmt.Errorf("app: backends.%s: %w", u.name, err)
				}
				return nil
			})
		}
	})
}

// waitReady waits until a spawned pool published all its instances.
func (u *poolUnit) waitReady(ctx context.Context) error {
	if u.sup == nil {
		return nil
	}
	timeout := u.cfg.Spawn.StartTimeout + time.Second
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-u.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("app: backends.%s: spawned instances not ready after %v", u.name, timeout)
	}
}

// stop ends the supervisor (stopping its processes) and the health
// checks, then closes the instance backends. Call it after the last
// request through the pool.
func (u *poolUnit) stop() {
	u.stopOnce.Do(func() {
		if u.cancel != nil {
			u.cancel()
		}
		u.wg.Wait()
		if err := u.pool.Close(); err != nil {
			u.log.Warn("closing pool", "err", err)
		}
	})
}

// drain waits (up to ctx) until no request is in flight in the pool.
func (u *poolUnit) drain(ctx context.Context) {
	for _, in := range u.pool.Snapshot().Instances {
		if err := u.pool.WaitIdle(ctx, in.Name); err != nil {
			u.log.Warn("pool still busy when stopped", "err", err)
			return
		}
	}
}

// compatible reports whether u can serve bc by keeping its pool: every
// key but instances and spawn is the same, and a spawned pool stays
// spawned in the same mode (its command and count may change: Rolling).
func (u *poolUnit) compatible(bc *config.Backend) bool {
	a, b := u.cfg, *bc
	a.Instances, b.Instances = nil, nil
	a.Spawn, b.Spawn = nil, nil
	if !reflect.DeepEqual(a, b) || (u.cfg.Spawn == nil) != (bc.Spawn == nil) {
		return false
	}
	return bc.Spawn == nil || u.cfg.Spawn.Mode == bc.Spawn.Mode
}

// newInstance builds one instance backend for an http or fastcgi pool.
func newInstance(bc *config.Backend, addr string, log *slog.Logger) (backends.Backend, error) {
	switch bc.Type {
	case config.BackendHTTP:
		return httpbackend.New(httpbackend.Options{
			Addr:                  addr,
			StripPrefix:           bc.StripPrefix,
			DialTimeout:           bc.DialTimeout,
			ResponseHeaderTimeout: bc.ResponseHeaderTimeout,
			HealthPath:            bc.Health.Path,
			Logger:                log,
		})
	case config.BackendFastCGI:
		return fastcgi.New(fastcgi.Options{
			Addr:             addr,
			Root:             bc.Root,
			StripPrefix:      bc.StripPrefix,
			Index:            bc.Index,
			DialTimeout:      bc.DialTimeout,
			Timeout:          bc.Timeout,
			PassEnv:          bc.PassEnv,
			SetEnv:           bc.SetEnv,
			HealthScript:     bc.Health.Script,
			MaxHeaderBytes:   bc.MaxHeaderBytes,
			KeepAlive:        bc.KeepAlive,
			KeepAliveTimeout: bc.KeepAliveTimeout,
			Logger:           log,
		})
	}
	return nil, fmt.Errorf("backend type %q has no instances", bc.Type)
}
