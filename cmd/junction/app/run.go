package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/junction-gw/junction/cmd/junction/internal/sdnotify"
)

// Run serves every listener until ctx is done or a listener fails, then
// shuts every server down gracefully (waiting up to shutdown_timeout for
// requests in flight, then closing what is left) and stops the pools and
// their spawned instances. Spawned instances get up to their start_timeout
// to become ready before the listeners serve. It returns nil after a
// shutdown that ctx asked for.
func (a *App) Run(ctx context.Context) error {
	if err := a.Listen(); err != nil {
		a.gen.Load().closeRoutes()
		return err
	}
	// Every socket is bound: from here on junction needs no privilege.
	if err := a.dropPrivileges(); err != nil {
		a.closeSockets()
		a.gen.Load().closeRoutes()
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
	a.gen.Load().closeShadows()
	a.waitScripts(ctx)
	a.gen.Load().closeAuthorizers()
	for _, u := range a.gen.Load().unitsNotIn(nil) {
		u.Stop()
	}
	a.stopAdmin()
	a.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond).String())
}

// waitScripts waits, until ctx ends, for the scripts of the current cgi
// backends that answered their request completely and went on working.
func (a *App) waitScripts(ctx context.Context) {
	for name, c := range a.gen.Load().cgis {
		if err := c.backend.Wait(ctx); err != nil {
			a.log.Warn("scripts still running at shutdown", "backend", name, "err", err)
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
		// A script that answered and works on must not be orphaned when
		// this process ends; each is bounded by its backend's timeout.
		a.gen.Load().closeShadows()
		a.waitScripts(context.Background())
		a.gen.Load().closeAuthorizers()
		for _, u := range units {
			u.Stop()
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

// notify tells systemd about junction's state (Type=notify and
// notify-reload units). Outside systemd ($NOTIFY_SOCKET unset) it does
// nothing.
func (a *App) notify(state string) {
	if err := sdnotify.Notify(state); err != nil {
		a.log.Warn("telling systemd", "err", err)
	}
}

// notifyReloading sends RELOADING=1 with the timestamp systemd matches
// to its reload request.
func (a *App) notifyReloading() {
	if err := sdnotify.Reloading(); err != nil {
		a.log.Warn("telling systemd", "err", err)
	}
}

// watchdog pings systemd's watchdog (WatchdogSec=) at half its interval
// until ctx ends. Without a watchdog it returns at once.
func (a *App) watchdog(ctx context.Context) error {
	every, ok := sdnotify.WatchdogInterval()
	if !ok {
		return nil
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := sdnotify.Watchdog(); err != nil {
				a.log.Warn("watchdog ping", "err", err)
			}
		}
	}
}

// dropPrivileges switches to the configured user and group, if any. Run
// calls it once every socket is bound and before any instance is spawned
// or request served; ServeInetd before serving its connection.
func (a *App) dropPrivileges() error {
	c := a.ops.cred
	if c == nil {
		return nil
	}
	if err := c.Drop(); err != nil {
		return fmt.Errorf("app: user: %w", err)
	}
	a.log.Info("running as", "user", c.User, "uid", c.UID, "gid", c.GID, "groups", c.Groups)
	return nil
}

// closeSockets closes every bound socket (Run failed before serving).
func (a *App) closeSockets() {
	for _, f := range a.fronts {
		if f.sock != nil {
			f.sock.Close()
		}
	}
	if a.ops.adminLn != nil {
		a.ops.adminLn.Close()
	}
}
