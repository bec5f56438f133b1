// Package app is junction's composition root: it turns a config.Config into
// backends, routers, codec servers and listeners, and runs them. The
// junction command is a thin shell around it; integration tests build it
// in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/config"
)

// App is a configured junction: its backends and one codec server per
// listener.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	backends map[string]backends.Backend
	fronts   []*front

	listenOnce sync.Once
	listenErr  error
	stopping   atomic.Bool
}

// front is one configured listener with its server and, once bound, its
// socket.
type front struct {
	cfg config.Listener
	srv server
	ln  net.Listener
}

// New builds the backends and codec servers that cfg describes. It does not
// bind any socket; Listen or Run does. cfg must have passed Validate (as
// config.Load and config.Parse ensure).
func New(cfg *config.Config, logger *slog.Logger) (*App, error) {
	if logger == nil {
		logger = slog.Default()
	}
	a := &App{cfg: cfg, log: logger, backends: map[string]backends.Backend{}}
	var errs []error
	for name, bc := range cfg.Backends {
		b, err := newBackend(name, bc, logger)
		if err != nil {
			errs = append(errs, fmt.Errorf("app: backends.%s: %w", name, err))
			continue
		}
		a.backends[name] = b
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	routes := make([]balancer.Route, len(cfg.Routes))
	for i, r := range cfg.Routes {
		routes[i] = balancer.Route{Prefix: r.Prefix, Backend: a.backends[r.Backend]}
	}
	for i, lc := range cfg.Listeners {
		rt := &balancer.Router{Routes: routes, Logger: logger}
		if lc.Backend != "" {
			rt.Default = a.backends[lc.Backend]
		}
		srv, err := newServer(lc, rt, logger)
		if err != nil {
			errs = append(errs, fmt.Errorf("app: listeners[%d]: %w", i, err))
			continue
		}
		a.fronts = append(a.fronts, &front{cfg: lc, srv: srv})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
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
					g.ln.Close()
				}
				return
			}
			f.ln = ln
		}
	})
	return a.listenErr
}

// Addrs returns the bound address of each listener, in configuration order
// (useful when the configuration asks for port 0). It is nil before Listen.
func (a *App) Addrs() []net.Addr {
	var addrs []net.Addr
	for _, f := range a.fronts {
		if f.ln == nil {
			return nil
		}
		addrs = append(addrs, f.ln.Addr())
	}
	return addrs
}

// Run serves every listener until ctx is done or a listener fails, then
// shuts every server down gracefully (waiting up to shutdown_timeout for
// requests in flight, then closing what is left). It returns nil after a
// shutdown that ctx asked for.
func (a *App) Run(ctx context.Context) error {
	if err := a.Listen(); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, f := range a.fronts {
		a.log.Info("listening", "protocol", f.cfg.Protocol, "address", f.ln.Addr().String(), "backend", f.cfg.Backend)
		g.Go(func() error {
			err := f.srv.Serve(f.ln)
			if a.stopping.Load() {
				return nil
			}
			return fmt.Errorf("app: %s listener %s: %w", f.cfg.Protocol, f.ln.Addr(), err)
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		a.shutdown()
		return nil
	})
	return g.Wait()
}

// shutdown stops every server at once, each gracefully within the
// configured timeout and forcibly after it.
func (a *App) shutdown() {
	a.stopping.Store(true)
	a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, f := range a.fronts {
		wg.Go(func() { a.stop(ctx, f.srv, f.cfg.Protocol) })
	}
	wg.Wait()
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
// because the connection was served.
func (a *App) ServeInetd(ctx context.Context, c net.Conn) error {
	if len(a.fronts) == 0 {
		c.Close()
		return errors.New("app: no listener configured")
	}
	f := a.fronts[0]
	done := make(chan error, 1)
	go func() { done <- f.srv.ServeConn(context.WithoutCancel(ctx), c) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		a.stopping.Store(true)
		sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		a.stop(sctx, f.srv, f.cfg.Protocol)
		return <-done
	}
}
