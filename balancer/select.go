package balancer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/junction-gw/junction/backends"
)

// pick is one request's selection state across attempts.
type pick struct {
	tried        []*upstream // instances already attempted
	sticky       string      // StickyCookie value from the request
	route        string      // session route from the request
	key          string      // hash key; "" falls back to round robin
	fallbackUsed bool        // the everything-is-down attempt was made
	queued       bool        // waited in the queue for a slot
}

var (
	errFull = errors.New("balancer: every candidate is at max_conns")
	errNone = errors.New("balancer: no available instance")
)

// pickLocked chooses an instance for pk and returns it, errFull when the
// candidates are busy, or errNone when there are none.
func (p *Pool) pickLocked(pk *pick) (*upstream, error) {
	now := p.clock.Now()
	// Candidate lists start on the stack: a pool rarely has more than a
	// handful of instances, and this runs for every request.
	var bufs [4][8]*upstream
	live, primary, backup := bufs[0][:0], bufs[1][:0], bufs[2][:0]
	for _, u := range p.ups {
		if u.draining || slices.Contains(pk.tried, u) {
			continue
		}
		live = append(live, u)
		if u.available(now) {
			if u.Backup {
				backup = append(backup, u)
			} else {
				primary = append(primary, u)
			}
		}
	}
	if len(primary) == 0 {
		primary = backup
	}
	if len(primary) == 0 {
		// Everything is down or ejected: rather than failing at once, try
		// the instance that failed longest ago, once per request.
		if pk.fallbackUsed || len(live) == 0 {
			return nil, errNone
		}
		best := live[0]
		for _, u := range live[1:] {
			if u.lastFail.Before(best.lastFail) {
				best = u
			}
		}
		if !best.hasRoom() {
			return nil, errFull
		}
		pk.fallbackUsed = true
		return best, nil
	}
	if t := p.stickyTarget(pk, primary); t != nil {
		if t.hasRoom() {
			return t, nil
		}
		return nil, errFull // keep the session on its instance
	}
	room := bufs[3][:0]
	for _, u := range primary {
		if u.hasRoom() {
			room = append(room, u)
		}
	}
	if len(room) == 0 {
		return nil, errFull
	}
	return p.choose(room, pk), nil
}

// stickyTarget returns the candidate the request's session names, if any.
func (p *Pool) stickyTarget(pk *pick, cands []*upstream) *upstream {
	for _, u := range cands {
		if (pk.route != "" && u.Route == pk.route) || (pk.sticky != "" && u.cookie == pk.sticky) {
			return u
		}
	}
	return nil
}

// choose applies the policy to a non-empty list of candidates with room.
func (p *Pool) choose(cands []*upstream, pk *pick) *upstream {
	switch p.o.Policy {
	case WeightedRoundRobin:
		// Smooth weighted round robin (nginx): every candidate gains its
		// weight, the richest is chosen and pays the total.
		var best *upstream
		total := 0
		for _, u := range cands {
			u.cw += u.Weight
			total += u.Weight
			if best == nil || u.cw > best.cw {
				best = u
			}
		}
		best.cw -= total
		return best
	case LeastConn:
		best := p.nextRR(cands, func(u, best *upstream) bool {
			// u.inflight/u.Weight < best.inflight/best.Weight
			return u.inflight*best.Weight < best.inflight*u.Weight
		})
		return best
	case RandomTwo:
		if len(cands) == 1 {
			return cands[0]
		}
		i := p.rand(len(cands))
		j := p.rand(len(cands) - 1)
		if j >= i {
			j++
		}
		if cands[j].inflight < cands[i].inflight {
			return cands[j]
		}
		return cands[i]
	case Hash:
		if pk.key != "" {
			return rendezvous(cands, pk.key)
		}
	}
	return p.nextRR(cands, nil)
}

// nextRR returns the first candidate at or after the round-robin cursor,
// or, with better, the best one with ties going to the cursor order; the
// cursor moves past the choice.
func (p *Pool) nextRR(cands []*upstream, better func(u, best *upstream) bool) *upstream {
	n := len(p.ups)
	dist := func(u *upstream) int { return (u.idx - p.rr%n + n) % n }
	best := cands[0]
	for _, u := range cands[1:] {
		if better != nil && better(u, best) {
			best = u
		} else if (better == nil || !better(best, u)) && dist(u) < dist(best) {
			best = u
		}
	}
	p.rr = best.idx + 1
	return best
}

// rendezvous returns the candidate with the highest hash of (key, name):
// removing an instance moves only the keys it had. The hash is
// mix64(FNV-1a(key, 0, name)); every junction computes the same, so they
// agree on where a key goes. FNV-1a runs byte by byte, so the state after
// key and 0 is computed once and carried on through each name.
func rendezvous(cands []*upstream, key string) *upstream {
	prefix := fnv1a(fnv1a(fnvOffset64, key), "\x00")
	var best *upstream
	var top uint64
	for _, u := range cands {
		s := mix64(fnv1a(prefix, u.Name))
		if best == nil || s > top {
			best, top = u, s
		}
	}
	return best
}

// FNV-1a's 64-bit parameters (hash/fnv's New64a).
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// fnv1a continues a 64-bit FNV-1a hash in state h over s.
func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// mix64 is a 64-bit finalizer (splitmix64) so similar names spread well.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hashKeyFunc returns the key extractor for spec, or nil when spec is bad.
func hashKeyFunc(spec string) func(*http.Request) string {
	kind, name, _ := strings.Cut(spec, ":")
	switch {
	case spec == "ip":
		return func(r *http.Request) string {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return host
		}
	case kind == "header" && name != "":
		// Header.Get, with the name canonicalized once rather than per request.
		canon := http.CanonicalHeaderKey(name)
		return func(r *http.Request) string {
			if v := r.Header[canon]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
	case kind == "cookie" && name != "":
		return func(r *http.Request) string {
			if c, err := r.Cookie(name); err == nil {
				return c.Value
			}
			return ""
		}
	}
	return nil
}

// sessionRoute returns ROUTE from a "id.ROUTE" session id in the route
// cookie or the path parameter, as mod_jk and mod_proxy_balancer read it
// (everything after the first dot).
func sessionRoute(r *http.Request, cookie string) string {
	id := ""
	if c, err := r.Cookie(cookie); err == nil {
		id = c.Value
	} else if r.URL != nil {
		param := ";" + strings.ToLower(cookie) + "="
		if i := strings.Index(r.URL.Path, param); i >= 0 {
			id = r.URL.Path[i+len(param):]
			if j := strings.IndexAny(id, ";/"); j >= 0 {
				id = id[:j]
			}
		}
	}
	_, route, _ := strings.Cut(id, ".")
	return route
}

// waiter is a request queued for a slot; the dispatcher sends it the
// chosen instance (slot already taken) or a final error.
type waiter struct {
	pk  *pick
	got chan grant
}

type grant struct {
	u   *upstream
	err error
}

// acquire takes a slot on an instance for pk, queueing when every
// candidate is busy.
func (p *Pool) acquire(ctx context.Context, pk *pick) (*upstream, error) {
	p.mu.Lock()
	u, err := p.pickLocked(pk)
	if u != nil {
		u.inflight++
		p.mu.Unlock()
		return u, nil
	}
	if err != errFull {
		p.mu.Unlock()
		return nil, err
	}
	if len(p.queue) >= p.o.QueueSize {
		p.mu.Unlock()
		return nil, fmt.Errorf("balancer: pool %q: queue full: %w", p.name, backends.ErrOverloaded)
	}
	w := &waiter{pk: pk, got: make(chan grant, 1)}
	p.queue = append(p.queue, w)
	pk.queued = true
	p.mu.Unlock()

	queued := p.clock.Now()
	defer func() { p.o.Observer.QueueWaited(p.clock.Now().Sub(queued)) }()
	t := p.clock.NewTimer(p.o.QueueTimeout)
	defer t.Stop()
	var why error
	select {
	case g := <-w.got:
		return g.u, g.err
	case <-t.C():
		why = fmt.Errorf("balancer: pool %q: queued %v: %w", p.name, p.o.QueueTimeout, backends.ErrOverloaded)
	case <-ctx.Done():
		why = fmt.Errorf("balancer: pool %q: waiting in queue: %w", p.name, ctx.Err())
	}
	p.mu.Lock()
	for i, q := range p.queue {
		if q == w {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			p.mu.Unlock()
			return nil, why
		}
	}
	p.mu.Unlock()
	// The dispatcher granted a slot as we gave up.
	g := <-w.got
	if g.u != nil && ctx.Err() != nil {
		p.release(g.u, nil, 0, outcomeNeutral)
		return nil, why
	}
	return g.u, g.err
}

// dispatchLocked hands free slots to queued requests in arrival order.
func (p *Pool) dispatchLocked() {
	kept := p.queue[:0]
	for _, w := range p.queue {
		u, err := p.pickLocked(w.pk)
		switch {
		case u != nil:
			u.inflight++
			w.got <- grant{u: u}
		case err == errFull:
			kept = append(kept, w)
		default:
			w.got <- grant{err: err}
		}
	}
	clear(p.queue[len(kept):])
	p.queue = kept
}
