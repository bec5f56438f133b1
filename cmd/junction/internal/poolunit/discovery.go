package poolunit

import (
	"context"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/balancer/discovery"
)

// Source kinds, for the status page.
const (
	SourceStatic = "static"
	SourceSpawn  = "spawn"
)

// Source describes where a unit's members come from.
type Source struct {
	// Kind is SourceStatic, SourceSpawn, discovery.KindDNS or
	// discovery.KindSRV.
	Kind string
	// Discovery is the lookup's state (dns and srv only).
	Discovery *discovery.Status
	// Pending are discovered instances that are not in the pool yet, by
	// name, with the reason (their first health check fails).
	Pending map[string]string
}

// Source returns where the unit's members come from.
func (u *Unit) Source() Source {
	switch {
	case u.disc != nil:
		st := u.disc.w.Status()
		u.disc.mu.Lock()
		defer u.disc.mu.Unlock()
		return Source{Kind: st.Kind, Discovery: &st, Pending: maps.Clone(u.disc.pending)}
	case u.sup != nil:
		return Source{Kind: SourceSpawn}
	}
	return Source{Kind: SourceStatic}
}

// discoverer puts a discovery.Watcher's answers into the unit's pool. It
// runs on the watcher's goroutine, off the request path: requests see the
// new set when balancer.Pool.Replace swaps it in.
type discoverer struct {
	u            *Unit
	w            *discovery.Watcher
	checkNew     bool
	checkTimeout time.Duration
	maxConns     int

	mu      sync.Mutex
	members map[string]string // name → address of the instances in the pool
	pending map[string]string // name → why it is not in the pool yet
	held    map[string]bool   // addresses of pending instances' backends
}

func (u *Unit) newDiscoverer(o Options) (*discoverer, error) {
	d := &discoverer{u: u, checkNew: o.CheckNew, checkTimeout: o.CheckTimeout, maxConns: o.MaxConns,
		members: map[string]string{}, pending: map[string]string{}, held: map[string]bool{}}
	if d.checkTimeout <= 0 {
		d.checkTimeout = 5 * time.Second // the pool's default health timeout cap
	}
	do := *o.Discovery
	do.Apply = d.apply
	if do.Logger == nil {
		do.Logger = u.log
	}
	w, err := discovery.New(do)
	if err != nil {
		return nil, err
	}
	d.w = w
	return d, nil
}

// waitFirst waits until the first lookup was applied, or ctx ends. A
// failed first lookup is not an error: the pool serves 503 until a lookup
// works.
func (d *discoverer) waitFirst(ctx context.Context) error {
	select {
	case <-d.w.Ready():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// candidate is a discovered instance with its backend.
type candidate struct {
	in    discovery.Instance
	b     backends.Backend
	fresh bool // not in the pool at this address yet
	err   error
}

// apply makes set the pool's members. A new instance, when checks are
// on, joins once its Check passes; apply reports whether all of set is in
// the pool.
func (d *discoverer) apply(ctx context.Context, set []discovery.Instance) bool {
	d.mu.Lock()
	cands := make([]candidate, len(set))
	for i, in := range set {
		cands[i] = candidate{in: in, fresh: d.members[in.Name] != in.Addr}
	}
	d.mu.Unlock()
	for i := range cands {
		c := &cands[i]
		c.b, c.err = d.u.instance(c.in.Addr)
	}
	if d.checkNew {
		d.checkFresh(ctx, cands)
	}
	if ctx.Err() != nil {
		d.dropUnheld(cands) // shutting down
		return false
	}
	var insts []balancer.Instance
	members, pending, held := map[string]string{}, map[string]string{}, map[string]bool{}
	keep := make([]string, 0, len(cands))
	for _, c := range cands {
		keep = append(keep, c.in.Addr)
		if c.err != nil {
			pending[c.in.Name] = c.err.Error()
			held[c.in.Addr] = true
			continue
		}
		members[c.in.Name] = c.in.Addr
		insts = append(insts, balancer.Instance{Name: c.in.Name, Backend: c.b, Weight: c.in.Weight,
			MaxConns: d.maxConns, AutoMaxConns: d.u.autoMax, Backup: c.in.Backup, Source: d.w.Status().Kind})
	}
	if err := d.u.pool.Replace(insts); err != nil {
		d.u.log.Error("discovery: updating pool", "err", err)
		d.dropUnheld(cands)
		return false
	}
	d.mu.Lock()
	oldPending, oldHeld, oldMembers := d.pending, d.held, d.members
	d.members, d.pending, d.held = members, pending, held
	d.mu.Unlock()
	// Backends of instances that were pending and are gone were never the
	// pool's to close.
	for addr := range oldHeld {
		if !slices.Contains(keep, addr) {
			d.u.closeCached(addr)
		}
	}
	d.u.forget(keep)
	d.log(oldMembers, members, oldPending, pending)
	return len(pending) == 0
}

// dropUnheld closes the backends apply built for cands and then gave up
// on: those at an address neither the pool nor the pending list holds.
// Stop closes only what those two hold, and a first check may have left a
// kept connection in such a backend.
func (d *discoverer) dropUnheld(cands []candidate) {
	d.mu.Lock()
	held := maps.Clone(d.held)
	for _, addr := range d.members {
		held[addr] = true
	}
	d.mu.Unlock()
	for _, c := range cands {
		if c.b != nil && !held[c.in.Addr] {
			d.u.closeCached(c.in.Addr)
		}
	}
}

// checkFresh runs the first Check of every fresh candidate concurrently,
// bounded by the health timeout.
func (d *discoverer) checkFresh(ctx context.Context, cands []candidate) {
	var wg sync.WaitGroup
	for i := range cands {
		c := &cands[i]
		chk, ok := c.b.(balancer.Checker)
		if !c.fresh || c.err != nil || !ok {
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, d.checkTimeout)
			defer cancel()
			if err := chk.Check(cctx); err != nil {
				c.err = err
			}
		})
	}
	wg.Wait()
}

// log reports instances that joined, left, or wait for their first check
// (once each time an instance starts waiting).
func (d *discoverer) log(oldMembers, members, oldPending, pending map[string]string) {
	for name, addr := range members {
		if oldMembers[name] != addr {
			d.u.log.Info("discovered instance joins the pool", "instance", name, "address", addr)
		}
	}
	for name, addr := range oldMembers {
		if _, ok := members[name]; !ok {
			d.u.log.Info("instance no longer discovered: draining", "instance", name, "address", addr)
		}
	}
	for name, why := range pending {
		if _, ok := oldPending[name]; !ok {
			d.u.log.Warn("discovered instance waits for its first health check to pass", "instance", name, "err", why)
		}
	}
}

// closePending closes the backends of pending instances, which the pool
// never had (Stop).
func (d *discoverer) closePending() {
	d.mu.Lock()
	held := d.held
	d.held = map[string]bool{}
	d.mu.Unlock()
	for addr := range held {
		d.u.closeCached(addr)
	}
}

// closeCached closes and forgets the backend built for addr.
func (u *Unit) closeCached(addr string) {
	u.mu.Lock()
	b := u.cache[addr]
	delete(u.cache, addr)
	u.mu.Unlock()
	if c, ok := b.(io.Closer); ok {
		if err := c.Close(); err != nil {
			u.log.Warn("closing pending instance", "address", addr, "err", err)
		}
	}
}
