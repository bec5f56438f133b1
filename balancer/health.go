package balancer

import (
	"context"
	"io"
	"sync"
)

// Run performs active health checks every Health.Interval on instances
// whose Backend is a Checker, until ctx ends (then it returns nil). With
// no interval configured it just waits for ctx. Fall consecutive failures
// take an instance down; Rise consecutive passes bring it back.
func (p *Pool) Run(ctx context.Context) error {
	if p.o.Health.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	for {
		p.checkAll(ctx)
		t := p.clock.NewTimer(p.o.Health.Interval)
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-p.joined:
				// An instance with AutoMaxConns joined (discovered, or a
				// reload's): its capacity now, not an interval later.
				p.checkRound(ctx, true)
			case <-t.C():
				break wait
			}
		}
	}
}

// checkAll runs one round of checks concurrently and applies the results.
func (p *Pool) checkAll(ctx context.Context) { p.checkRound(ctx, false) }

// checkRound is checkAll, or with unprobed, a round of only the instances
// whose capacity is still to be asked.
func (p *Pool) checkRound(ctx context.Context, unprobed bool) {
	p.mu.Lock()
	var ups []*upstream
	var auto []bool // ask the capacity too
	for _, u := range p.ups {
		if _, ok := u.Backend.(Checker); ok && (!unprobed || u.unprobed) {
			u.unprobed = false
			ups = append(ups, u)
			auto = append(auto, u.AutoMaxConns)
		}
	}
	p.mu.Unlock()
	errs := make([]error, len(ups))
	caps := make([]capacityResult, len(ups))
	var wg sync.WaitGroup
	for i, u := range ups {
		wg.Go(func() {
			cctx, cancel := context.WithCancel(ctx)
			t := p.clock.AfterFunc(p.o.Health.Timeout, cancel)
			errs[i] = u.Backend.(Checker).Check(cctx)
			t.Stop()
			cancel()
			if errs[i] == nil && auto[i] {
				caps[i] = p.probeCapacity(ctx, u.Backend)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // shutting down: cancelled checks say nothing
	}
	p.mu.Lock()
	closers := p.checkedRemovedLocked(ups)
	now := p.clock.Now()
	for i, u := range ups {
		p.applyCapacityLocked(u, caps[i], now)
		if err := errs[i]; err != nil {
			u.okRun = 0
			u.failRun++
			u.lastFail, u.lastErr = now, "health check: "+err.Error()
			if !u.down && u.failRun >= p.o.Health.Fall {
				u.down = true
				p.log.Warn("instance down", "instance", u.Name, "err", err)
			}
			continue
		}
		u.failRun = 0
		u.okRun++
		if u.down && u.okRun >= p.o.Health.Rise {
			u.down = false
			p.log.Info("instance up", "instance", u.Name)
		}
	}
	p.dispatchLocked()
	p.mu.Unlock()
	p.closeAll(closers)
}

// checkedRemovedLocked returns the backends to close again of instances
// removed while their check ran: Replace (or their last request) closed
// them before the check finished, and the check may have left a kept
// connection behind.
func (p *Pool) checkedRemovedLocked(ups []*upstream) []io.Closer {
	var cs []io.Closer
	for _, u := range ups {
		if u.removed && u.inflight == 0 {
			if c := closerOfUps(u, p.ups); c != nil {
				cs = append(cs, c)
			}
		}
	}
	return cs
}
