// Package app is junction's composition root: it turns a config.Config into
// backends, pools, routers, codec servers and listeners, runs them, and
// swaps in a new configuration on Reload. The junction command is a thin
// shell around it; integration tests build it in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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

// front is one configured listener with its server and, once bound, its
// socket. The handler stays for the front's life; reloads swap the router
// behind it.
type front struct {
	cfg     config.Listener
	srv     server
	handler *handler
	sock    *socket       // nil before Listen
	view    net.Listener  // the server's view of sock
	retired atomic.Bool   // Serve's error is expected
	served  chan struct{} // closed when Serve returned
	conns   *connCounter  // open connections
}

// handler serves every request with the router current at its start.
type handler struct {
	rt atomic.Pointer[route]
}

// route is one configuration's router for a listener, with the requests
// still running through it: a reload drains removed pools only once the
// routers that could reach them are idle.
type route struct {
	*balancer.Router
	inflight atomic.Int64
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := h.rt.Load()
	rt.inflight.Add(1)
	defer rt.inflight.Add(-1)
	rt.ServeHTTP(w, r)
}

// swap installs rt and returns the route it replaced.
func (h *handler) swap(rt *balancer.Router) *route {
	return h.rt.Swap(&route{Router: rt})
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
		p.close()
		return nil, errors.Join(errs...)
	}
	p.m.SetPoolSource(a.PoolStatuses)
	return a, nil
}

func (a *App) newFront(lc config.Listener, g *generation) (*front, error) {
	h := &handler{}
	h.swap(g.router(lc, a.log))
	srv, conns, err := a.newFrontServer(lc, h)
	if err != nil {
		return nil, err
	}
	return &front{cfg: lc, srv: srv, handler: h, served: make(chan struct{}), conns: conns}, nil
}

// newFrontServer builds lc's codec server around h with the access log,
// metrics, connection counting and response spooling.
func (a *App) newFrontServer(lc config.Listener, h http.Handler) (server, *connCounter, error) {
	h, budget := spooling(lc, h, a.log) // spool.go
	srv, err := newServer(lc, a.ops.wrap(lc, h), a.log)
	if err != nil {
		return nil, nil, err
	}
	shareSpoolBudget(srv, budget)
	return srv, a.ops.observe(lc, srv), nil
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
			f.sock = newSocket(ln)
			f.view = f.sock.view()
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
		addrs = append(addrs, f.sock.ln.Addr())
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
		out[name] = u.pool
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
		if u.sup != nil {
			out[name] = u.sup
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

// Run serves every listener until ctx is done or a listener fails, then
// shuts every server down gracefully (waiting up to shutdown_timeout for
// requests in flight, then closing what is left) and stops the pools and
// their spawned instances. Spawned instances get up to their start_timeout
// to become ready before the listeners serve. It returns nil after a
// shutdown that ctx asked for.
func (a *App) Run(ctx context.Context) error {
	if err := a.Listen(); err != nil {
		return err
	}
	// Every socket is bound: from here on junction needs no privilege.
	if err := a.dropPrivileges(); err != nil {
		a.closeSockets()
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	a.mu.Lock()
	a.group, a.runCtx = g, gctx
	gen := a.gen.Load()
	for _, u := range gen.unitsNotIn(nil) {
		u.start(g.Go)
	}
	a.mu.Unlock()
	for _, u := range gen.unitsNotIn(nil) {
		if err := u.waitReady(gctx); err != nil {
			a.log.Warn("serving before every spawned instance is ready", "err", err)
		}
	}
	a.mu.Lock()
	for _, f := range a.fronts {
		a.serve(f)
	}
	a.serveAdmin()
	a.running = true
	a.ops.ready.Store(true)
	a.mu.Unlock()
	a.log.Info("running", "config_version", gen.cfg.Version)
	a.notify("READY=1\nSTATUS=serving configuration " + gen.cfg.Version)
	g.Go(func() error { return a.watchdog(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		a.shutdown()
		return nil
	})
	err := g.Wait()
	a.ops.close()
	return err
}

// serve starts f's server in the run group. a.mu is held.
func (a *App) serve(f *front) {
	a.log.Info("listening", "protocol", f.cfg.Protocol, "address", f.sock.ln.Addr().String(), "backend", f.cfg.Backend)
	srv, view := f.srv, f.view
	a.group.Go(func() error {
		defer close(f.served)
		err := srv.Serve(view)
		if a.stopping.Load() || f.retired.Load() {
			return nil
		}
		return fmt.Errorf("app: %s listener %s: %w", f.cfg.Protocol, view.Addr(), err)
	})
}

// shutdown stops every server at once, each gracefully within the
// configured timeout and forcibly after it, then the pools.
func (a *App) shutdown() {
	a.ops.ready.Store(false)
	a.notify("STOPPING=1")
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopping.Store(true)
	timeout := a.gen.Load().cfg.ShutdownTimeout
	a.log.Info("shutting down", "timeout", timeout.String())
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, f := range a.fronts {
		wg.Go(func() {
			a.stop(ctx, f.srv, f.cfg.Protocol)
			if f.sock != nil {
				f.sock.Close()
			}
		})
	}
	wg.Wait()
	a.draining.Wait()
	for _, u := range a.gen.Load().unitsNotIn(nil) {
		u.stop()
	}
	a.stopAdmin()
	a.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond).String())
}

func (a *App) stop(ctx context.Context, srv server, protocol string) {
	if err := srv.Shutdown(ctx); err != nil {
		a.log.Warn("graceful shutdown incomplete; closing connections", "protocol", protocol, "err", err)
		if err := srv.Close(); err != nil {
			a.log.Warn("close failed", "protocol", protocol, "err", err)
		}
	}
}

// ServeInetd serves the one connection c with the first listener's
// protocol, limits, backend and routes, as started by inetd, xinetd or a
// systemd Accept=yes socket. When ctx ends first, the connection gets the
// same graceful shutdown as Run gives. It returns the connection's error,
// already logged by the codec server; the junction command exits 0 anyway,
// because the connection was served. Pools run (and spawned instances
// live) for as long as the connection.
func (a *App) ServeInetd(ctx context.Context, c net.Conn) error {
	if len(a.fronts) == 0 {
		c.Close()
		return errors.New("app: no listener configured")
	}
	defer a.ops.close()
	if err := a.dropPrivileges(); err != nil {
		c.Close()
		return err
	}
	units := a.gen.Load().unitsNotIn(nil)
	var g errgroup.Group
	for _, u := range units {
		u.start(g.Go)
	}
	defer func() {
		for _, u := range units {
			u.stop()
		}
		if err := g.Wait(); err != nil {
			a.log.Warn("pool ended", "err", err)
		}
	}()
	for _, u := range units {
		if err := u.waitReady(ctx); err != nil {
			a.log.Warn("serving before every spawned instance is ready", "err", err)
		}
	}
	f := a.fronts[0]
	timeout := a.gen.Load().cfg.ShutdownTimeout
	done := make(chan error, 1)
	go func() { done <- f.srv.ServeConn(context.WithoutCancel(ctx), c) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		a.stopping.Store(true)
		sctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		a.stop(sctx, f.srv, f.cfg.Protocol)
		return <-done
	}
}

func sortedNames[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func joinErrs(errs []error) error { return errors.Join(errs...) }
