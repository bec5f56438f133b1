package app

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"reflect"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/fastcgi"
	httpbackend "github.com/junction-gw/junction/backends/httpbackend"
	"github.com/junction-gw/junction/backends/spawn"
	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/balancer/discovery"
	"github.com/junction-gw/junction/cmd/junction/internal/poolunit"
	"github.com/junction-gw/junction/config"
)

// poolUnit is one http or fastcgi backend: its running pool (poolunit)
// and the configuration it serves, as last applied. A unit survives a
// reload that leaves its configuration (instances and spawn aside)
// unchanged. cfg is read and written under App.mu.
type poolUnit struct {
	*poolunit.Unit
	name string
	cfg  config.Backend
}

// newPoolUnit maps an http or fastcgi backend's configuration to its
// pool unit. Nothing runs until start.
func newPoolUnit(name string, bc *config.Backend, log *slog.Logger, obs balancer.Observer, discErr func(error)) (*poolUnit, error) {
	log = log.With("backend", name)
	cfg := *bc
	po := poolOptions(bc, log)
	po.Observer = obs
	o := poolunit.Options{
		Name:         name,
		Pool:         po,
		Instances:    members(bc.Instances, bc.MaxConns, bc.MaxConnsFallback),
		MaxConns:     instanceMaxConns(bc.MaxConns, bc.MaxConnsFallback),
		AutoMaxConns: bc.MaxConns.Auto(),
		NewBackend: func(addr string) (backends.Backend, error) {
			return newInstance(&cfg, addr, log)
		},
		// A FastCGI instance always answers GET_VALUES; an HTTP one is
		// asked its health path only when one is configured (its "/" may
		// well be a 404). Otherwise a connect is enough.
		CheckReady: bc.Type == config.BackendFastCGI || bc.Health.Path != "",
		Logger:     log,
	}
	if bc.Spawn != nil {
		so := spawnOptions(bc.Spawn)
		o.Spawn = &so
	}
	if d := bc.Discovery; d != nil {
		o.Discovery = &discovery.Options{DNS: d.DNS, SRV: d.SRV, Server: d.Resolver, Refresh: d.Refresh,
			OnError: discErr, Logger: log}
		// A discovered instance joins once it passes the pool's active
		// check, when the pool has active checks.
		o.CheckNew = bc.Health.Interval > 0
		o.CheckTimeout = bc.Health.Timeout
	}
	u, err := poolunit.New(o)
	if err != nil {
		return nil, err
	}
	return &poolUnit{Unit: u, name: name, cfg: cfg}, nil
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

func spawnOptions(sc *config.Spawn) spawn.Options {
	return spawn.Options{
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
	}
}

// members maps a configured instance list to pool members (their
// backends are the unit's to build); an instance without max_conns gets
// the backend's. max_conns: auto makes the fallback the bound until the
// instance tells its capacity.
func members(list []config.Instance, maxConns config.Conns, fallback int) []balancer.Instance {
	out := make([]balancer.Instance, len(list))
	for i, in := range list {
		mc := in.MaxConns
		if mc == 0 {
			mc = maxConns
		}
		out[i] = balancer.Instance{Name: in.Address, Route: in.Route, Weight: in.Weight,
			MaxConns: instanceMaxConns(mc, fallback), AutoMaxConns: mc.Auto(), Backup: in.Backup}
	}
	return out
}

// instanceMaxConns is the balancer's MaxConns for a configured max_conns:
// the fallback for auto.
func instanceMaxConns(mc config.Conns, fallback int) int {
	if mc.Auto() {
		return fallback
	}
	return int(mc)
}

// keepAliveConns is the FastCGI backend's KeepAlive for a configured
// keepalive: auto keeps every connection whose request ended, and the
// pool's bound on requests in flight (max_conns) bounds how many those
// are.
func keepAliveConns(k config.Conns) int {
	if k.Auto() {
		return math.MaxInt32
	}
	return int(k)
}

// start runs the unit in the group goFn belongs to; an error ending it
// names the backend.
func (u *poolUnit) start(goFn func(func() error)) {
	u.Start(func(run func() error) {
		goFn(func() error {
			if err := run(); err != nil {
				return fmt.Errorf("app: backends.%s: %w", u.name, err)
			}
			return nil
		})
	})
}

// waitReady waits until a spawned pool published all its instances.
func (u *poolUnit) waitReady(ctx context.Context) error {
	if err := u.WaitReady(ctx); err != nil {
		return fmt.Errorf("app: backends.%s: %w", u.name, err)
	}
	return nil
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
			StatusPath:       bc.Health.StatusPath,
			MaxHeaderBytes:   bc.MaxHeaderBytes,
			KeepAlive:        keepAliveConns(bc.KeepAlive),
			KeepAliveTimeout: bc.KeepAliveTimeout,
			Logger:           log,
		})
	}
	return nil, fmt.Errorf("backend type %q has no instances", bc.Type)
}
