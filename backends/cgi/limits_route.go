package cgi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/junction-gw/junction/backends"
)

// settings are what may differ between the requests of one Backend: its
// own, and each Route's.
type settings struct {
	b       *Backend
	timeout time.Duration
	limits  Limits
	// lim starts scripts under limits; nil starts them directly.
	lim *limiter
	// sub, when set, is a route's own bound inside the backend's.
	sub *semaphore.Weighted
	// releaseFn is release bound once, so that starting a script does not
	// allocate a method value for it.
	releaseFn func()
}

// release frees the slots of a script that has exited, or failed to
// start.
func (st *settings) release() {
	st.b.release()
	if st.sub != nil {
		st.sub.Release(1)
	}
}

// RouteOptions override a Backend's settings for the requests of one
// route (a slow report script next to fast ones), without a second
// Backend: the scripts, the environment and the backend's MaxConcurrent
// bound and queue stay shared.
type RouteOptions struct {
	// Timeout replaces the backend's Timeout; 0 keeps it.
	Timeout time.Duration
	// MaxConcurrent bounds this route's scripts running at once, inside
	// the backend's own bound (a route's script takes a slot of each);
	// 0: only the backend's bound.
	MaxConcurrent int
	// Limits override the backend's limits field by field: a zero field
	// keeps the backend's.
	Limits Limits
}

// Route is a view of a Backend with a route's settings. It implements
// backends.Backend.
type Route struct {
	st settings
}

var _ backends.Backend = (*Route)(nil)

// Route returns the view of b that serves with o's settings.
func (b *Backend) Route(o RouteOptions) (*Route, error) {
	st := b.def
	st.sub = nil
	var errs []error
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("cgi: %s: route timeout %v must not be negative", b.name, o.Timeout))
	} else if o.Timeout > 0 {
		st.timeout = o.Timeout
	}
	switch {
	case o.MaxConcurrent < 0:
		errs = append(errs, fmt.Errorf("cgi: %s: route max_concurrent %d must not be negative", b.name, o.MaxConcurrent))
	case o.MaxConcurrent > 0 && b.maxRun > 0 && o.MaxConcurrent > b.maxRun:
		errs = append(errs, fmt.Errorf("cgi: %s: route max_concurrent %d is more than the backend's %d, inside which it bounds", b.name, o.MaxConcurrent, b.maxRun))
	case o.MaxConcurrent > 0:
		st.sub = semaphore.NewWeighted(int64(o.MaxConcurrent))
	}
	if !o.Limits.IsZero() {
		st.limits = b.def.limits.Over(o.Limits)
		var err error
		if st.lim, err = b.limiter(st.limits); err != nil {
			errs = append(errs, fmt.Errorf("cgi: %s: route %w", b.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rt := &Route{st: st}
	rt.st.b = b
	rt.st.releaseFn = rt.st.release
	return rt, nil
}

// Serve runs the script r names with the route's settings. An error means
// nothing was written.
func (rt *Route) Serve(w http.ResponseWriter, r *http.Request) error {
	return rt.st.b.serve(w, r, &rt.st)
}

// acquire takes a slot of the route (when it has a bound of its own) and
// one of the backend, waiting for both in the backend's bounded queue.
func (b *Backend) acquire(ctx context.Context, sub *semaphore.Weighted) error {
	if sub == nil || sub.TryAcquire(1) {
		if b.sem == nil || b.sem.TryAcquire(1) {
			return nil
		}
		if sub != nil {
			sub.Release(1) // waited for below, with the backend's slot
		}
	}
	if b.waiting.Add(1) > b.maxQueue {
		b.waiting.Add(-1)
		return fmt.Errorf("cgi: %s: queue full: %w", b.name, backends.ErrOverloaded)
	}
	defer b.waiting.Add(-1)
	wctx, cancel := context.WithTimeout(ctx, b.queueWait)
	defer cancel()
	err := acquireIn(wctx, sub)
	if err == nil {
		if err = acquireIn(wctx, b.sem); err != nil && sub != nil {
			sub.Release(1)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return backends.ContextError(ctx, "cgi: "+b.name+": waiting for a slot")
		}
		return fmt.Errorf("cgi: %s: no slot within %v: %w", b.name, b.queueWait, backends.ErrOverloaded)
	}
	return nil
}

func acquireIn(ctx context.Context, sem *semaphore.Weighted) error {
	if sem == nil {
		return nil
	}
	return sem.Acquire(ctx, 1)
}
