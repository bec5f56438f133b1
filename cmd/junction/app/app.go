// Package app is junction's composition root: it turns a config.Config into
// backends, pools, routers, codec servers and listeners, runs them, and
// swaps in a new configuration on Reload. The junction command is a thin
// shell around it; integration tests build it in-process.
//
// It is wiring: what it wires lives in packages of its own. Sockets (bound,
// inherited from systemd or a spawning web server, the inetd connection)
// come from cmd/junction/internal/sockets; each http or fastcgi pool runs
// as a cmd/junction/internal/poolunit; a reload hands a kept socket from
// one codec server to the next through internal/keepopen.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/junction-gw/junction/backends/cgi"
	"github.com/junction-gw/junction/backends/spawn"
	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/config"
)

// App is a configured junction: its backends and one codec server per
// listener.
type App struct {
	log *slog.Logger
	ops *ops
	gen atomic.Pointer[generation] // the current configuration's backends

	mu       sync.Mutex // serializes Run's start, Reload and shutdown
	fronts   []*front   // current listeners, in configuration order
	group    *errgroup.Group
	runCtx   context.Context
	running  bool
	draining sync.WaitGroup // retired servers and pools finishing

	listenOnce sync.Once
	listenErr  error
	stopping   atomic.Bool
}

// New builds the backends, pools and codec servers that cfg describes. It
// binds no socket and starts no process; Listen and Run do. cfg must have
// passed Validate (as config.Load and config.Parse ensure).
func New(cfg *config.Config, logger *slog.Logger) (*App, error) {
	return NewWithOptions(cfg, logger, Options{})
}

// NewWithOptions is New with what the command line adds.
func NewWithOptions(cfg *config.Config, logger *slog.Logger, o Options) (*App, error) {
	if logger == nil {
		logger = slog.Default()
	}
	p, err := newOps(cfg, o, logger)
	if err != nil {
		return nil, err
	}
	a := &App{log: logger, ops: p}
	g, _, _, err := buildGeneration(cfg, nil, logger, p)
	if err != nil {
		p.close()
		return nil, err
	}
	a.gen.Store(g)
	var errs []error
	for i, lc := range cfg.Listeners {
		f, err := a.newFront(lc, g)
		if err != nil {
			errs = append(errs, fmt.Errorf("app: listeners[%d]: %w", i, err))
			continue
		}
		a.fronts = append(a.fronts, f)
	}
	if len(errs) > 0 {
		g.closeRoutes()
		p.close()
		return nil, errors.Join(errs...)
	}
	p.m.SetPoolSource(a.PoolStatuses)
	return a, nil
}

// Listen binds every listener's socket. Run calls it if it was not called
// before; call it first to learn the bound addresses (Addrs) before
// serving. On failure it closes what it bound.
func (a *App) Listen() error {
	a.listenOnce.Do(func() {
		for i, f := range a.fronts {
			ln, err := listen(f.cfg)
			if err != nil {
				a.listenErr = fmt.Errorf("app: listeners[%d]: %w", i, err)
				for _, g := range a.fronts[:i] {
					g.sock.Close()
				}
				return
			}
			f.sock = ln
		}
		if err := a.ops.listenAdmin(a.gen.Load().cfg); err != nil {
			a.listenErr = err
			for _, f := range a.fronts {
				f.sock.Close()
			}
		}
	})
	return a.listenErr
}

// Addrs returns the bound address of each listener, in configuration order
// (useful when the configuration asks for port 0). It is nil before Listen.
func (a *App) Addrs() []net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	var addrs []net.Addr
	for _, f := range a.fronts {
		if f.sock == nil {
			return nil
		}
		addrs = append(addrs, f.sock.Addr())
	}
	return addrs
}

// ConfigVersion identifies the configuration being served (config.Config
// Version: a hash of the file), for the status page and logs.
func (a *App) ConfigVersion() string { return a.gen.Load().cfg.Version }

// Config returns the configuration being served. Do not modify it.
func (a *App) Config() *config.Config { return a.gen.Load().cfg }

// Pools returns the current configuration's http and fastcgi pools by
// backend name. After a reload the map is a different one.
func (a *App) Pools() map[string]*balancer.Pool {
	g := a.gen.Load()
	out := make(map[string]*balancer.Pool, len(g.pools))
	for name, u := range g.pools {
		out[name] = u.Pool()
	}
	return out
}

// PoolStatuses returns a snapshot of every current pool, sorted by name.
func (a *App) PoolStatuses() []balancer.PoolStatus {
	pools := a.Pools()
	out := make([]balancer.PoolStatus, 0, len(pools))
	for _, name := range sortedNames(pools) {
		out = append(out, pools[name].Snapshot())
	}
	return out
}

// Spawned returns the supervisors of the current spawned pools by backend
// name.
func (a *App) Spawned() map[string]*spawn.Supervisor {
	g := a.gen.Load()
	out := map[string]*spawn.Supervisor{}
	for name, u := range g.pools {
		if sup := u.Supervisor(); sup != nil {
			out[name] = sup
		}
	}
	return out
}

// CGIBackends returns the current configuration's cgi backends by name.
func (a *App) CGIBackends() map[string]*cgi.Backend {
	g := a.gen.Load()
	out := make(map[string]*cgi.Backend, len(g.cgis))
	for name, c := range g.cgis {
		out[name] = c.backend
	}
	return out
}

func sortedNames[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func joinErrs(errs []error) error { return errors.Join(errs...) }

// NewLogger returns the logger that the log section asks for, writing to w.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo // Validate rejects unknown levels; this is a fallback
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
