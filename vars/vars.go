// Package vars is junction's shared request model: the CGI-style
// variables a front server sent with a request (SCGI headers, FastCGI
// PARAMS, AJP attributes rendered as meta-variables) and the *http.Request
// they describe.
//
// The variables ride along in the request context (NewContext,
// NewLazyContext, FromContext, Lookup), so a backend can still see exactly
// what nginx, Apache or lighttpd said: SCRIPT_FILENAME, DOCUMENT_ROOT,
// HTTPS, custom scgi_param / fastcgi_param values. Backends must treat them
// as advice from the front server, never as authority over which file runs
// (see backends/cgi for the rules).
//
// The package also holds the rules every codec and backend applies alike:
// Request builds the *http.Request from variables; Validate is the one check
// of a decoded request (a violation is answered 400 and reaches no backend);
// HeaderVar maps a request header to its CGI variable (RFC 3875 4.1.18,
// with the httpoxy and underscore rules); ValidToken and ValidValue are the
// field syntax both directions share.
package vars

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Var is one name/value pair as the front server sent it.
type Var struct {
	Name, Value string
}

// Vars is the ordered list of variables a front server sent. Names are
// unique except for HTTP_* names, which a front server repeats when a
// request header was repeated (nginx does).
type Vars []Var

// Lookup returns the first value of name and whether it was present.
func (v Vars) Lookup(name string) (string, bool) {
	for _, kv := range v {
		if kv.Name == name {
			return kv.Value, true
		}
	}
	return "", false
}

// Get returns the first value of name, or "".
func (v Vars) Get(name string) string {
	s, _ := v.Lookup(name)
	return s
}

// Without returns a copy of v without the named variables.
func (v Vars) Without(names ...string) Vars {
	out := make(Vars, 0, len(v))
next:
	for _, kv := range v {
		for _, n := range names {
			if kv.Name == n {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

type ctxKey struct{}

// Source makes a request's variables when they are asked for (see
// NewLazyContext). Its methods may be called concurrently.
type Source interface {
	// Vars returns all the variables. A context calls it at most once.
	Vars() Vars
	// Lookup returns what Vars would give for name (its first value)
	// without making the other variables.
	Lookup(name string) (string, bool)
}

// varsCtx carries Vars in one allocation (context.WithValue would need a
// second one to box the slice). With src set, the variables are made the
// first time all of them are asked for; v is then never nil again (a
// made-but-empty list is Vars{}), which keeps the struct in 64 bytes.
type varsCtx struct {
	context.Context
	src Source
	mu  sync.Mutex // guards v while src is set
	v   Vars
}

// vars returns the variables, making them on the first call.
func (c *varsCtx) vars() Vars {
	if c.src == nil {
		return c.v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.v == nil {
		if c.v = c.src.Vars(); c.v == nil {
			c.v = Vars{}
		}
	}
	return c.v
}

// lookup returns one variable, from the made variables when there are
// some, else from the source.
func (c *varsCtx) lookup(name string) (string, bool) {
	if c.src == nil {
		return c.v.Lookup(name)
	}
	c.mu.Lock()
	v := c.v
	c.mu.Unlock()
	if v != nil {
		return v.Lookup(name)
	}
	return c.src.Lookup(name)
}

func (c *varsCtx) Value(key any) any {
	if key == (ctxKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// NewContext returns a copy of ctx carrying v.
func NewContext(ctx context.Context, v Vars) context.Context {
	return &varsCtx{Context: ctx, v: v}
}

// NewLazyContext returns a copy of ctx whose variables src makes, once,
// when FromContext first asks; Lookup asks src for one variable without
// making the rest. A front end whose requests are not variables on the
// wire (AJP13) renders them only for the backends that read them (CGI,
// FastCGI), not for every proxied request.
func NewLazyContext(ctx context.Context, src Source) context.Context {
	return &varsCtx{Context: ctx, src: src}
}

// FromContext returns the variables stored in ctx, or nil when the request
// did not come through a CGI-style front end (plain HTTP) and is not the
// follow-up of a CGI local redirect.
func FromContext(ctx context.Context) Vars {
	if c, ok := ctx.Value(ctxKey{}).(*varsCtx); ok {
		return c.vars()
	}
	return nil
}

// Lookup returns the first value of the variable name stored in ctx and
// whether it was present. Unlike FromContext(ctx).Lookup(name) it does
// not make all the variables of a lazy context (an access log reading
// REMOTE_USER on every request).
func Lookup(ctx context.Context, name string) (string, bool) {
	if c, ok := ctx.Value(ctxKey{}).(*varsCtx); ok {
		return c.lookup(name)
	}
	return "", false
}

// ErrDuplicate is wrapped by Request when a non-HTTP_* variable repeats.
var ErrDuplicate = errors.New("vars: repeated variable")

// Check reports a repeated CGI variable. Repeated HTTP_* names are allowed:
// they are how nginx forwards a repeated request header.
func (v Vars) Check() error {
	if i := v.duplicate(); i >= 0 {
		return fmt.Errorf("%w %s", ErrDuplicate, v[i].Name)
	}
	return nil
}

// duplicate returns the index of the first non-HTTP_* variable whose name
// appeared before, or -1. A front server sends a few dozen variables, so
// the quadratic scan is cheaper than a map and allocates nothing.
func (v Vars) duplicate() int {
	for i := 1; i < len(v); i++ {
		name := v[i].Name
		if strings.HasPrefix(name, "HTTP_") {
			continue
		}
		if name == "" {
			for j := 0; j < i; j++ {
				if v[j].Name == "" {
					return i
				}
			}
			continue
		}
		// Names of one length mostly differ in their last byte
		// (SERVER_NAME, SERVER_PORT): checking it first skips the
		// comparison call for nearly every pair.
		last := name[len(name)-1]
		for j := 0; j < i; j++ {
			if n := v[j].Name; len(n) == len(name) && n[len(n)-1] == last && n == name {
				return i
			}
		}
	}
	return -1
}

// LastWins returns v with each repeated non-HTTP_* variable reduced to its
// last occurrence, and whether anything was dropped. FastCGI front ends use
// it: nginx sends SCRIPT_FILENAME twice when a site includes fastcgi.conf
// and also sets its own fastcgi_param, and php-fpm takes the last value.
// SCGI forbids repeats, so its codec never calls this.
func (v Vars) LastWins() (Vars, bool) {
	if v.duplicate() < 0 {
		return v, false
	}
	out := make(Vars, 0, len(v))
next:
	for i, kv := range v {
		if !strings.HasPrefix(kv.Name, "HTTP_") {
			for _, later := range v[i+1:] {
				if later.Name == kv.Name {
					continue next
				}
			}
		}
		out = append(out, kv)
	}
	return out, true
}
