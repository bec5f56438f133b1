package app

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/junction-gw/junction/config"
)

// Reload switches to cfg (already validated) while serving:
//
//   - Backends and routes are rebuilt; what did not change is kept as is
//     (a pool keeps its instances' state, a spawned pool its processes).
//     New pools start, and new spawned instances must become ready, before
//     any request can reach them.
//   - A spawned pool whose command, count or environment changed is
//     replaced one instance at a time (spawn.Supervisor.Rolling): each new
//     instance serves before its predecessor stops, and the predecessor
//     finishes its requests first.
//   - A static pool whose instance list alone changed keeps its pool and
//     swaps the list (balancer.Pool.Replace).
//   - Each listener's router is swapped atomically: requests in flight
//     finish on the old one, new requests take the new one.
//   - A listener whose address did not change keeps its socket. If its
//     protocol or other options changed, the socket is handed to a new
//     server: the old one stops accepting, the new one serves the same
//     socket, and the old one finishes its connections (no connection is
//     refused or lost in between). New listeners are bound; removed ones
//     shut down gracefully.
//   - Removed pools get no new requests; once their requests finished (at
//     most shutdown_timeout), their health checks and spawned instances
//     stop.
//
// On error nothing changed (except instances a failed rolling replacement
// had already replaced, which serve the new command) and the old
// configuration keeps serving. Reload needs Run to be running.
func (a *App) Reload(cfg *config.Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.running || a.stopping.Load() {
		return errors.New("app: reload: not running")
	}
	a.notifyReloading()
	defer func() {
		// systemd waits for READY=1 after RELOADING=1, success or not.
		a.notify("READY=1\nSTATUS=serving configuration " + a.gen.Load().cfg.Version)
	}()
	start := time.Now()
	old := a.gen.Load()
	next, roll, replace, err := buildGeneration(cfg, old, a.log, a.ops)
	if err != nil {
		return err
	}
	added := next.unitsNotIn(old)
	fail := func(err error) error {
		next.closeAuthorizers()
		for _, u := range added {
			u.Stop()
		}
		a.draining.Go(next.closeShadows)
		return err
	}
	for _, u := range added {
		u.start(a.group.Go)
	}
	for _, u := range added {
		if err := u.waitReady(a.runCtx); err != nil {
			return fail(err)
		}
	}
	for _, r := range roll {
		if err := a.roll(r); err != nil {
			return fail(err)
		}
	}
	plan, err := a.planFronts(cfg, next)
	if err != nil {
		return fail(err)
	}

	// Commit: from here on nothing fails.
	for u, list := range replace {
		a.replaceInstances(u, list)
	}
	a.gen.Store(next)
	a.commitFronts(plan, next)
	a.draining.Go(old.closeShadows) // Run waits for it before it stops the pools
	old.closeAuthorizers()
	removed := old.unitsNotIn(next)
	a.drainUnits(removed, plan.retired, cfg.ShutdownTimeout)
	a.log.Info("reloaded", "config_version", cfg.Version, "previous_version", old.cfg.Version,
		"pools_started", len(added), "pools_rolled", len(roll), "pools_removed", len(removed),
		"listeners_added", len(plan.added), "listeners_restarted", len(plan.restarted),
		"listeners_removed", len(plan.removed), "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// roll replaces a spawned pool's instances with the new spawn section.
func (a *App) roll(r rolling) error {
	u := r.unit
	a.log.Info("replacing spawned instances", "backend", u.name, "command", strings.Join(r.cfg.Command, " "), "count", r.cfg.Count)
	if err := u.Roll(a.runCtx, spawnOptions(r.cfg)); err != nil {
		return fmt.Errorf("app: backends.%s: %w", u.name, err)
	}
	sc := *r.cfg
	u.cfg.Spawn = &sc
	return nil
}

func (a *App) replaceInstances(u *poolUnit, list []config.Instance) {
	if err := u.Replace(members(list, u.cfg.MaxConns, u.cfg.MaxConnsFallback)); err != nil {
		// The list passed Validate; a backend that still fails to build
		// leaves the old list serving.
		a.log.Error("reload: keeping the old instances", "backend", u.name, "err", err)
		return
	}
	u.cfg.Instances = list
}

// frontPlan is how the listeners change.
type frontPlan struct {
	next      []*front // the new listener list, in configuration order
	kept      []kept   // same socket and codec options: router swapped
	restarted []restart
	retired   []*route // routers replaced by commitFronts; drained before removed pools stop
	added     []*front
	removed   []*front
}

// kept is a listener whose server stays; cfg is its new configuration,
// which may name another backend (only the router changes).
type kept struct {
	f   *front
	cfg config.Listener
}

// sameServer reports whether a listener's server can stay as it is: every
// option but the backend (which lives in the router) is unchanged.
// Restarting the server for a backend change would close idle keep-alive
// connections that clients may be reusing at that moment.
func sameServer(a, b config.Listener) bool {
	a.Backend, b.Backend = "", ""
	return reflect.DeepEqual(a, b)
}

// restart is a listener whose options changed: a new server on its socket.
type restart struct{ old, new *front }

// planFronts matches cfg's listeners to the running ones by address
// (sockets are kept by address; a changed protocol or option gets a new
// server on the kept socket), builds the servers and binds new sockets. On
// error it closes what it bound.
func (a *App) planFronts(cfg *config.Config, g *generation) (*frontPlan, error) {
	p := &frontPlan{}
	used := map[*front]bool{}
	var errs []error
	for i, lc := range cfg.Listeners {
		var match *front
		for _, f := range a.fronts {
			if !used[f] && sameAddress(f, lc.Address) {
				match = f
				break
			}
		}
		if match != nil {
			used[match] = true
			// Port 0 in the running configuration: the bound address
			// names the same socket.
			lc.Address = match.cfg.Address
		}
		switch {
		case match != nil && sameServer(match.cfg, lc):
			p.kept = append(p.kept, kept{f: match, cfg: lc})
			p.next = append(p.next, match)
		case match != nil:
			// The new server serves through the old front's handler, so
			// requests on either server see the same router.
			srv, conns, err := a.newFrontServer(lc, match.handler)
			if err == nil {
				err = checkAllow(lc, match.sock)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("app: listeners[%d]: %w", i, err))
				continue
			}
			nf := &front{cfg: lc, srv: srv, handler: match.handler, sock: match.sock,
				served: make(chan struct{}), conns: conns}
			p.restarted = append(p.restarted, restart{old: match, new: nf})
			p.next = append(p.next, nf)
		default:
			nf, err := a.newFront(lc, g)
			if err != nil {
				errs = append(errs, fmt.Errorf("app: listeners[%d]: %w", i, err))
				continue
			}
			ln, err := listen(lc)
			if err != nil {
				errs = append(errs, fmt.Errorf("app: listeners[%d]: %w", i, err))
				continue
			}
			nf.sock = ln
			p.added = append(p.added, nf)
			p.next = append(p.next, nf)
		}
	}
	for _, f := range a.fronts {
		if !used[f] {
			p.removed = append(p.removed, f)
		}
	}
	if len(errs) > 0 {
		for _, f := range p.added {
			f.sock.Close()
		}
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// commitFronts swaps the routers and starts and stops servers as planned.
// a.mu is held.
func (a *App) commitFronts(p *frontPlan, g *generation) {
	for _, k := range p.kept {
		p.retired = append(p.retired, k.f.handler.swap(g.router(k.cfg, a.log)))
	}
	for _, r := range p.restarted {
		p.retired = append(p.retired, r.new.handler.swap(g.router(r.new.cfg, a.log)))
		a.handOver(r.old, r.new, g.cfg.ShutdownTimeout)
		a.log.Info("listener options changed; new server on the same socket", "address", r.new.cfg.Address)
	}
	for _, f := range p.added {
		a.serve(f)
	}
	for _, f := range p.removed {
		p.retired = append(p.retired, f.handler.rt.Load()) // its requests may still reach removed pools
		a.log.Info("listener removed", "protocol", f.cfg.Protocol, "address", f.cfg.Address)
		a.retire(f, true, g.cfg.ShutdownTimeout)
	}
	a.fronts = p.next
}

// drainUnits stops removed pools once their requests finished: first
// every request still running through a replaced router (one that could
// still reach these pools, e.g. through a CGI local redirect), then the
// pools' own in-flight requests.
func (a *App) drainUnits(units []*poolUnit, retired []*route, timeout time.Duration) {
	if len(units) == 0 {
		return
	}
	a.draining.Go(func() {
		ctx, cancel := context.WithTimeout(a.runCtx, timeout)
		defer cancel()
		// A request may have loaded the old router just before the swap
		// and not counted itself yet; a short grace covers that window.
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for _, rt := range retired {
			for rt.inflight.Load() > 0 && ctx.Err() == nil {
				select {
				case <-tick.C:
				case <-ctx.Done():
				}
			}
		}
		for _, u := range units {
			u.Drain(ctx)
			u.Stop()
			a.log.Info("pool stopped", "backend", u.name)
		}
	})
}
