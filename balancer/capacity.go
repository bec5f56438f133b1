package balancer

import (
	"context"
	"time"

	"github.com/junction-gw/junction/backends"
)

// CapacityProber is implemented by instance backends that can ask their
// instance how many requests it serves at once (php-fpm's status page,
// FastCGI's FCGI_GET_VALUES). The pool asks instances with AutoMaxConns,
// after each health check they pass (and in a round of their own when
// Replace adds one), and bounds their concurrent requests by the answer.
type CapacityProber interface {
	Capacity(ctx context.Context) (backends.Capacity, error)
}

// capacityState is what the pool learned of an instance's capacity;
// guarded by Pool.mu.
type capacityState struct {
	last  backends.Capacity // the latest answer; Max 0: the answer did not tell
	known bool              // an answer came
	err   string            // the latest probe's failure; "" after an answer
	at    time.Time         // when the latest probe ended
}

// capacityResult is one probe's outcome, carried from checkAll's
// goroutines to where the pool applies it.
type capacityResult struct {
	asked bool
	c     backends.Capacity
	err   error
}

// limit is the bound on u's requests in flight: its learned capacity
// with AutoMaxConns, while one is known, else MaxConns (0: none).
func (u *upstream) limit() int {
	if u.AutoMaxConns && u.capacity.last.Max > 0 {
		return u.capacity.last.Max
	}
	return u.MaxConns
}

// probeCapacity asks b its instance's capacity, bounded by the health
// check timeout; a backend that cannot tell is not asked.
func (p *Pool) probeCapacity(ctx context.Context, b backends.Backend) capacityResult {
	cp, ok := b.(CapacityProber)
	if !ok {
		return capacityResult{}
	}
	cctx, cancel := context.WithCancel(ctx)
	t := p.clock.AfterFunc(p.o.Health.Timeout, cancel)
	c, err := cp.Capacity(cctx)
	t.Stop()
	cancel()
	return capacityResult{asked: true, c: c, err: err}
}

// applyCapacityLocked records r for u. A failed probe keeps the capacity
// learned before (php-fpm reloading answers nothing for a moment); the
// failure is shown and logged once per change.
func (p *Pool) applyCapacityLocked(u *upstream, r capacityResult, now time.Time) {
	if !r.asked {
		return
	}
	cs := &u.capacity
	cs.at = now
	if r.err != nil {
		if cs.err == "" {
			p.log.Warn("instance capacity unknown", "instance", u.Name, "err", r.err, "max_conns", u.limit())
		}
		cs.err = r.err.Error()
		return
	}
	before, changed := u.limit(), !cs.known || cs.last.Max != r.c.Max || cs.err != ""
	cs.last, cs.known, cs.err = r.c, true, ""
	if changed {
		if r.c.Max > 0 {
			p.log.Info("instance capacity", "instance", u.Name, "capacity", r.c.Max, "source", r.c.Source, "max_conns", u.limit())
		} else {
			p.log.Warn("instance capacity unknown", "instance", u.Name, "why", r.c.Why, "max_conns", u.limit())
		}
	}
	if u.limit() > before {
		p.dispatchLocked() // queued requests may fit now
	}
}
