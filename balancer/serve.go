package balancer

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/junction-gw/junction/backends"
)

// outcome is what an attempt says about the instance's health.
type outcome int

const (
	outcomeOK      outcome = iota // the instance answered
	outcomeFail                   // the instance failed
	outcomeNeutral                // says nothing: client gone, instance full
)

var _ backends.Backend = (*Pool)(nil)

// Serve sends r to an instance, retrying elsewhere while the failure
// allows it (see retryable) and MaxAttempts lasts. A non-nil error means
// nothing was written: the last attempt's error, or ErrOverloaded when
// the queue was full or timed out, or a 503 *backends.Error when no
// instance is available.
//
// Each attempt reports its instance and upstream time to the request's
// backends.Upstream (the last attempt wins); retries and queue waits go
// to Options.Observer. The request and each attempt are counted for the
// status page's sparklines (Snapshot's History).
func (p *Pool) Serve(w http.ResponseWriter, r *http.Request) error {
	begun := p.clock.Now()
	end, err := p.serve(w, r, begun)
	p.recordRequest(r, begun, end, err)
	return err
}

// serve is Serve without the pool's own bookkeeping. It returns when the
// last attempt ended (zero without one).
func (p *Pool) serve(w http.ResponseWriter, r *http.Request, begun time.Time) (end time.Time, _ error) {
	pk := &pick{}
	if p.o.StickyCookie != "" {
		if c, err := r.Cookie(p.o.StickyCookie); err == nil {
			pk.sticky = c.Value
		}
	}
	p.mu.Lock()
	routes, attempts := p.routes, p.o.MaxAttempts
	if attempts == 0 {
		attempts = max(len(p.ups), 1)
	}
	p.mu.Unlock()
	if routes {
		pk.route = sessionRoute(r, p.o.RouteCookie)
	}
	if p.o.Policy == Hash {
		pk.key = p.hashKey(r)
	}
	up := backends.UpstreamFromContext(r.Context())
	var last error
	for attempt := 0; attempt < attempts; attempt++ {
		u, err := p.acquire(r.Context(), pk)
		if err != nil {
			if errors.Is(err, errNone) {
				if last != nil {
					return end, last
				}
				return end, &backends.Error{Status: http.StatusServiceUnavailable, Err: fmt.Errorf("balancer: pool %q: %w", p.name, err)}
			}
			return end, err
		}
		pk.tried = append(pk.tried, u)
		if attempt > 0 {
			p.o.Observer.Retried() // counted once another instance was found
		}
		req := r
		if attempt > 0 && r.GetBody != nil {
			body, err := r.GetBody()
			if err != nil {
				p.release(u, nil, 0, outcomeNeutral)
				return end, fmt.Errorf("balancer: replaying body: %w", err)
			}
			req = r.WithContext(r.Context())
			req.Body = body
		}
		bw := w
		if cookie := p.stickyCookie(r, u, pk); cookie != "" {
			bw = &cookieWriter{ResponseWriter: w, cookie: cookie}
		}
		// The clock is read as little as it can be (50-80 ns a reading on
		// the test VM, the largest cost in BenchmarkPoolServe's profile):
		// the first attempt of a request that did not queue starts when
		// the request did.
		start := begun
		if attempt > 0 || pk.queued {
			start = p.clock.Now()
		}
		err = u.Backend.Serve(bw, req)
		end = p.clock.Now()
		took := end.Sub(start)
		up.SetInstance(u.Name)
		up.SetUpstreamTime(took)
		oc := classify(r, err)
		p.release(u, err, took, oc)
		u.recordAttempt(end, took, oc)
		if err == nil {
			return end, nil
		}
		last = err
		if !retryable(r, err) {
			return end, err
		}
		p.log.Debug("retrying", "instance", u.Name, "attempt", attempt+1, "err", err)
	}
	return end, last
}

// stickyCookie returns the Set-Cookie value that pins later requests to
// u, or "" when the request already carries it.
func (p *Pool) stickyCookie(r *http.Request, u *upstream, pk *pick) string {
	if p.o.StickyCookie == "" || pk.sticky == u.cookie {
		return ""
	}
	c := &http.Cookie{Name: p.o.StickyCookie, Value: u.cookie, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode}
	return c.String()
}

// cookieWriter adds the sticky Set-Cookie to the final response only: set
// earlier, it would be lost when a proxied 1xx (103 Early Hints, 100
// Continue) clears the header map, and a failed attempt would have to take
// it back.
type cookieWriter struct {
	http.ResponseWriter
	cookie string
	done   bool
}

func (w *cookieWriter) WriteHeader(code int) {
	if !w.done && code >= 200 {
		w.done = true
		w.ResponseWriter.Header().Add("Set-Cookie", w.cookie)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *cookieWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the codec's writer (Flush,
// deadlines).
func (w *cookieWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher for callers that type-assert it.
func (w *cookieWriter) Flush() {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(w.ResponseWriter).Flush() //nolint:errcheck // Flusher has no error
}

// classify says what err tells about the instance. A failure on the
// client's side (a *backends.ClientError: its body ended early, it went
// away) says nothing, whatever else the error wraps.
func classify(r *http.Request, err error) outcome {
	if err == nil {
		return outcomeOK
	}
	var be *backends.Error
	var lr *backends.LocalRedirect
	switch {
	case errors.As(err, &lr):
		return outcomeOK
	case backends.IsClientError(err):
		return outcomeNeutral
	case errors.As(err, &be) && be.Status < 500:
		return outcomeOK
	case errors.Is(err, backends.ErrOverloaded), r.Context().Err() != nil:
		return outcomeNeutral
	}
	return outcomeFail
}

// retryable reports whether a failed attempt may be repeated on another
// instance: always when nothing reached the instance (dial error, instance
// full); otherwise only for idempotent methods (RFC 9110 9.2.2) whose body
// is absent or replayable. Local redirects, 4xx answers, the client's own
// failures (*backends.ClientError) and requests whose client is gone are
// final.
func retryable(r *http.Request, err error) bool {
	var be *backends.Error
	var lr *backends.LocalRedirect
	var de *backends.DialError
	switch {
	case r.Context().Err() != nil, errors.As(err, &lr), backends.IsClientError(err):
		return false
	case errors.As(err, &be) && be.Status < 500:
		return false
	case errors.As(err, &de), errors.Is(err, backends.ErrOverloaded):
		return true
	}
	if !backends.Idempotent(r.Method) {
		return false
	}
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}

// release frees u's slot, records the attempt and hands the slot on.
func (p *Pool) release(u *upstream, err error, took time.Duration, oc outcome) {
	var closer io.Closer
	p.mu.Lock()
	u.inflight--
	now := p.clock.Now()
	switch oc {
	case outcomeOK:
		u.requests++
		u.fails, u.backoff = 0, 0
		// A success (the everything-down fallback tries ejected instances)
		// proves the instance is back: end its ejection now, or requests
		// would keep alternating onto the instances still down.
		u.ejectedUntil = time.Time{}
		u.lat.add(took)
	case outcomeFail:
		u.requests++
		u.failures++
		u.fails++
		u.lastFail, u.lastErr = now, err.Error()
		u.lat.add(took)
		p.maybeEjectLocked(u, now)
	}
	if u.inflight == 0 {
		if u.idle != nil {
			close(u.idle)
			u.idle = nil
		}
		if u.removed {
			for i, q := range p.retiring {
				if q == u {
					p.retiring = append(p.retiring[:i], p.retiring[i+1:]...)
					closer = closerOfUps(u, p.ups)
					break
				}
			}
		}
	}
	p.dispatchLocked()
	p.mu.Unlock()
	if closer != nil {
		p.closeAll([]io.Closer{closer})
	}
}

func closerOfUps(u *upstream, ups []*upstream) io.Closer {
	insts := make([]Instance, len(ups))
	for i, x := range ups {
		insts[i] = x.Instance
	}
	return closerOf(u.Backend, insts)
}

// maybeEjectLocked ejects u after FailThreshold consecutive failures, or
// after one failure once it came back from an ejection without a success
// since; each such ejection doubles, up to EjectMax.
func (p *Pool) maybeEjectLocked(u *upstream, now time.Time) {
	if p.o.FailThreshold < 0 || now.Before(u.ejectedUntil) {
		return
	}
	if u.fails < p.o.FailThreshold && u.backoff == 0 {
		return
	}
	d := p.o.EjectBase
	for i := 0; i < u.backoff && d < p.o.EjectMax; i++ {
		d *= 2
	}
	d = min(d, p.o.EjectMax)
	u.ejectedUntil = now.Add(d)
	u.backoff++
	u.ejections++
	u.fails = 0
	p.log.Warn("instance ejected", "instance", u.Name, "for", d, "err", u.lastErr)
}
