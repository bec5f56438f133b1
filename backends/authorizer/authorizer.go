package authorizer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgienv"
	"github.com/junction-gw/junction/backends/internal/idle"
	"github.com/junction-gw/junction/internal/rawconn"
	"github.com/junction-gw/junction/internal/sockaddr"
)

// Options configure an Authorizer.
type Options struct {
	// Instances are the authorizer application's addresses: "host:port",
	// "unix:/path" or "unix:@name". At least one is required.
	Instances []string
	// Script is SCRIPT_FILENAME, the script the authorizer application
	// runs (on its side, e.g. /srv/auth/check.php). Required.
	Script string
	// DialTimeout bounds connecting to one instance; 0 means 5s.
	DialTimeout time.Duration
	// Timeout bounds the exchange once connected: sending the request and
	// receiving the whole answer; 0 means 10s.
	Timeout time.Duration
	// KeepAlive is how many idle connections to each instance are kept
	// for the next request; 0 closes each connection after its answer.
	// php-fpm gives every open connection a worker of its own, so keep it
	// under the authorizer pool's pm.max_children.
	KeepAlive int
	// KeepAliveTimeout closes a kept connection idle that long; 0 means
	// 60s.
	KeepAliveTimeout time.Duration
	// MaxAnswerBytes bounds the body of the authorizer's answer junction
	// holds to relay a denial; a longer answer is a 502. 0 means 64 KiB.
	MaxAnswerBytes int
	// Headers passes the authorizer's variables to the backend as
	// "Variable-NAME" request headers (for http pools) instead of CGI
	// variables (for cgi and fastcgi backends).
	Headers bool
	// Both passes the variables both ways, whatever Headers says: for a
	// route whose answers are compared with a shadow backend of the other
	// kind (a cgi script and an http pool), which sees the request as the
	// guarded backend does.
	Both bool
	// PassEnv and SetEnv add parameters to every authorizer request, as
	// a fastcgi backend's do.
	PassEnv []string
	SetEnv  map[string]string
	// Name identifies the authorizer in logs (e.g. the route's prefix).
	Name string
	// Logger receives the authorizer's STDERR output, dropped variables
	// and failures; nil means slog.Default().
	Logger *slog.Logger
	// Observer, when set, counts outcomes.
	Observer Observer
	// Counts, when set, counts outcomes too, for a status page (see
	// Authorizer.Stats); nil gives the Authorizer counts of its own.
	Counts *Counts
}

// Observer counts what authorizers decide. Implementations must be safe
// for concurrent use.
type Observer interface {
	// Allowed counts a request the authorizer let through.
	Allowed()
	// Denied counts a request answered with the authorizer's own answer.
	Denied()
	// Failed counts a request the authorizer could not decide (down, too
	// slow, broken answer).
	Failed()
}

// Defaults for zero Options fields.
const (
	// DefaultDialTimeout: a local authorizer answers a connect at once; the
	// next instance is better than waiting longer.
	DefaultDialTimeout = 5 * time.Second
	// DefaultTimeout: an access check is a lookup, not a page; a check that
	// takes ten seconds has failed, and the client is still waiting.
	DefaultTimeout = 10 * time.Second
	// DefaultKeepAliveTimeout matches nginx's keepalive_timeout.
	DefaultKeepAliveTimeout = 60 * time.Second
	// DefaultMaxAnswerBytes holds a denial page with room to spare.
	DefaultMaxAnswerBytes = 64 << 10
)

// Authorizer guards a backend. It is a backends.Backend, safe for
// concurrent use.
type Authorizer struct {
	next      backends.Backend
	instances []*instance
	script    string
	env       *cgienv.Builder
	dial      time.Duration
	timeout   time.Duration
	maxAnswer int
	headers   bool // Variable-NAME request headers
	cgiVars   bool // CGI variables (package vars)
	name      string
	log       *slog.Logger
	obs       Observer
	counts    *Counts
	rr        atomic.Uint32
}

// instance is one address of the authorizer application.
type instance struct {
	addr sockaddr.Addr
	idle *idle.Pool[*conn]
}

// New returns an Authorizer that asks o's application before serving a
// request with next.
func New(next backends.Backend, o Options) (*Authorizer, error) {
	var errs []error
	if next == nil {
		errs = append(errs, errors.New("authorizer: no backend to guard"))
	}
	if len(o.Instances) == 0 {
		errs = append(errs, errors.New("authorizer: instances: at least one is required"))
	}
	if o.Script == "" {
		errs = append(errs, errors.New("authorizer: script: required"))
	}
	if o.KeepAlive < 0 || o.DialTimeout < 0 || o.Timeout < 0 || o.KeepAliveTimeout < 0 || o.MaxAnswerBytes < 0 {
		errs = append(errs, errors.New("authorizer: negative limit"))
	}
	a := &Authorizer{next: next, script: o.Script, dial: o.DialTimeout, timeout: o.Timeout,
		maxAnswer: o.MaxAnswerBytes, headers: o.Headers || o.Both, cgiVars: !o.Headers || o.Both, name: o.Name, log: o.Logger, obs: o.Observer, counts: o.Counts}
	if a.dial == 0 {
		a.dial = DefaultDialTimeout
	}
	if a.timeout == 0 {
		a.timeout = DefaultTimeout
	}
	if a.maxAnswer == 0 {
		a.maxAnswer = DefaultMaxAnswerBytes
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.obs == nil {
		a.obs = noObserver{}
	}
	if a.counts == nil {
		a.counts = new(Counts)
	}
	keepTimeout := o.KeepAliveTimeout
	if keepTimeout == 0 {
		keepTimeout = DefaultKeepAliveTimeout
	}
	for i, s := range o.Instances {
		addr, err := sockaddr.ParseDial(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("authorizer: instances[%d]: %w", i, err))
			continue
		}
		a.instances = append(a.instances, &instance{addr: addr,
			idle: idle.New(o.KeepAlive, keepTimeout, func(c *conn) bool { return rawconn.Quiet(c.Conn) })})
	}
	env, err := cgienv.New(cgienv.Options{PassEnv: o.PassEnv, SetEnv: o.SetEnv, OmitPath: true})
	if err != nil {
		errs = append(errs, fmt.Errorf("authorizer: %w", err))
	}
	a.env = env
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// Stats returns the outcomes counted so far into the Authorizer's Counts
// (Options.Counts: also those of the authorizers that counted into it
// before).
func (a *Authorizer) Stats() Stats { return a.counts.Stats() }

// Close closes the kept connections; connections in use close when their
// exchange ends. The Authorizer keeps serving (without reuse).
func (a *Authorizer) Close() {
	for _, in := range a.instances {
		in.idle.Close()
	}
}

// Serve asks the authorizer about r, then serves r with the guarded
// backend (allowed) or writes the authorizer's answer (denied). An error
// means nothing was written: the authorizer failed (502, 503, 504), the
// client went away, or the guarded backend returned one.
func (a *Authorizer) Serve(w http.ResponseWriter, r *http.Request) error {
	ans, err := a.ask(r)
	if err != nil {
		if !backends.IsClientError(err) {
			a.obs.Failed()
			a.counts.failed.Add(1)
		}
		return err
	}
	if ans.status != http.StatusOK {
		a.obs.Denied()
		a.counts.denied.Add(1)
		ans.writeTo(w)
		return nil
	}
	a.obs.Allowed()
	a.counts.allowed.Add(1)
	return a.next.Serve(w, a.allowed(r, ans))
}

// hopByHop are the header fields that describe one connection (RFC 9110
// 7.6.1); an authorizer's CGI-style answer has no business sending them
// on, and the codec frames the body itself.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Content-Length"}

// writeTo relays a denial: the authorizer's status, headers and body.
func (ans *answer) writeTo(w http.ResponseWriter) {
	h := w.Header()
	for k, vs := range ans.header {
		h[k] = vs
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
	h.Set("Content-Length", strconv.Itoa(len(ans.body)))
	w.WriteHeader(ans.status)
	_, _ = w.Write(ans.body) // a client that left is the codec's to notice
}

type noObserver struct{}

func (noObserver) Allowed() {}
func (noObserver) Denied()  {}
func (noObserver) Failed()  {}

// prefix names the authorizer in errors.
func (a *Authorizer) prefix() string {
	if a.name == "" {
		return "authorizer"
	}
	return "authorizer " + strings.TrimSpace(a.name)
}
