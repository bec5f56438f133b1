package accesslog

import (
	"context"
	"sync"
	"time"

	"github.com/junction-gw/junction/backends"
)

// Record is the per-request detail only the inner layers know: which
// backend and instance served the request, how long the upstream took,
// and the user a route's authorizer told the backend of.
// The access log middleware puts one in every request's context (or uses
// the one already there); the router, balancer or backend fills it through
// backends.UpstreamFromContext(ctx). All
// methods are safe on a nil *Record (no access log configured) and for
// concurrent use.
type Record struct {
	mu       sync.Mutex
	backend  string
	instance string
	upstream time.Duration
	user     string
	userSet  bool // user replaces the front server's REMOTE_USER
}

// A Record is the request's backends.Upstream: the balancer and the
// composition root's backend wrappers report to it without knowing this
// package.
var _ backends.Upstream = (*Record)(nil)

// NewContext returns ctx carrying rec, as the request's backends.Upstream.
func NewContext(ctx context.Context, rec *Record) context.Context {
	return backends.NewUpstreamContext(ctx, rec)
}

// FromContext returns the request's Record, or nil when there is none.
func FromContext(ctx context.Context) *Record {
	rec, _ := backends.UpstreamFromContext(ctx).(*Record)
	return rec
}

// SetBackend names the backend that served the request.
func (r *Record) SetBackend(name string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.backend = name
	r.mu.Unlock()
}

// SetInstance names the instance (upstream address, pool member) that
// served the request. After retries, the last call wins.
func (r *Record) SetInstance(name string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.instance = name
	r.mu.Unlock()
}

// SetUpstreamTime records how long the backend took, from sending the
// request to the end of its response. After retries, the last call wins.
func (r *Record) SetUpstreamTime(d time.Duration) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.upstream = d
	r.mu.Unlock()
}

// SetUser records the user an inner layer (a route's authorizer) told
// the backend of, in place of the front server's REMOTE_USER; empty
// means none. The last call wins.
func (r *Record) SetUser(name string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.user, r.userSet = name, true
	r.mu.Unlock()
}

// User returns the name given to SetUser, and whether SetUser was
// called.
func (r *Record) User() (string, bool) {
	if r == nil {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.user, r.userSet
}

// Backend returns the name given to SetBackend.
func (r *Record) Backend() string {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.backend
}

// Instance returns the name given to SetInstance.
func (r *Record) Instance() string {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.instance
}

// UpstreamTime returns the duration given to SetUpstreamTime; 0 when the
// request never reached an upstream.
func (r *Record) UpstreamTime() time.Duration {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.upstream
}
