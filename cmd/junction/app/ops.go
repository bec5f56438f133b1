package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/authorizer"
	"github.com/junction-gw/junction/cmd/junction/internal/accesslog"
	"github.com/junction-gw/junction/cmd/junction/internal/metrics"
	"github.com/junction-gw/junction/cmd/junction/internal/privdrop"
	"github.com/junction-gw/junction/config"
)

// Options are what the junction command knows and the configuration file
// does not.
type Options struct {
	// Version is junction's version string, shown on the status page.
	Version string
	// AccessLog receives access log lines when log.access is on and
	// log.access_file is unset; nil means standard output. "junction
	// inetd" sets it: there standard output is the connection.
	AccessLog io.Writer
}

// ops is what the operations features share for the App's life, across
// reloads: the metrics registry, the access log, the identity to drop to
// and the operations listener.
type ops struct {
	reg     *prometheus.Registry
	m       *metrics.Metrics
	alog    *accesslog.Logger
	alogOut io.Closer // the access log file, if any
	cred    *privdrop.Credential
	started time.Time
	version string
	ready   atomic.Bool // listeners serve and no shutdown began

	authzMu sync.Mutex
	authz   map[string]*authorizer.Counts // by route prefix (authorizers.go)

	admin   *http.Server
	adminLn net.Listener
}

// newOps builds the registry and access log for cfg. The access log file
// is opened here, before any privilege drop.
func newOps(cfg *config.Config, o Options, log *slog.Logger) (*ops, error) {
	p := &ops{reg: prometheus.NewRegistry(), started: time.Now(), version: o.Version}
	if p.version == "" {
		p.version = "devel"
	}
	p.m = metrics.New(p.reg)
	var errs []error
	cred, err := privdrop.Lookup(cfg.User, cfg.Group)
	if err != nil {
		errs = append(errs, fmt.Errorf("app: user: %w", err))
	}
	p.cred = cred
	format, err := accesslog.ParseFormat(cfg.Log.Access)
	if err != nil {
		errs = append(errs, fmt.Errorf("app: log.access: %w", err))
	}
	var w io.Writer = os.Stdout
	if o.AccessLog != nil {
		w = o.AccessLog
	}
	if format != accesslog.Off && cfg.Log.AccessFile != "" {
		f, err := os.OpenFile(cfg.Log.AccessFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			errs = append(errs, fmt.Errorf("app: log.access_file: %w", err))
		} else {
			w, p.alogOut = f, f
			if cred != nil {
				// The file stays open across the drop, but logrotate's
				// copies and a restart as the user need it owned so.
				if err := f.Chown(cred.UID, cred.GID); err != nil && os.Geteuid() == 0 {
					errs = append(errs, fmt.Errorf("app: log.access_file: %w", err))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		p.close()
		return nil, err
	}
	p.alog = accesslog.New(accesslog.Options{Writer: w, Format: format, ErrorLog: log})
	return p, nil
}

func (p *ops) close() {
	if p.alogOut != nil {
		p.alogOut.Close()
	}
}

// protocolLabel is the protocol's name in metrics, logs and the status
// page.
func protocolLabel(protocol string) string {
	if protocol == config.ProtocolAJP {
		return "ajp13"
	}
	return protocol
}

// wrap puts the access log and the request metrics around h for one
// listener. The outermost layer gives every request a Record (the
// request's backends.Upstream), so the metrics learn the backend even
// with the access log off.
func (p *ops) wrap(lc config.Listener, h http.Handler) http.Handler {
	name, proto := lc.Address, protocolLabel(lc.Protocol)
	backendOf := func(r *http.Request) string { return accesslog.FromContext(r.Context()).Backend() }
	inner := p.alog.Middleware(name, proto, backendOf, p.m.Middleware(name, proto, backendOf, h))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if accesslog.FromContext(r.Context()) == nil {
			r = r.WithContext(accesslog.NewContext(r.Context(), &accesslog.Record{}))
		}
		inner.ServeHTTP(w, r)
	})
}

// connCounter is a listener's connection observer, set on its codec
// server when the server is built: it counts open connections for the
// status page and forwards every event to the metrics.
type connCounter struct {
	open  atomic.Int64
	next  *metrics.CodecObserver
	state func(net.Conn, http.ConnState) // the metrics' hook for httpfront
}

// observer returns the connection observer for lc's server.
func (p *ops) observer(lc config.Listener) *connCounter {
	name, proto := lc.Address, protocolLabel(lc.Protocol)
	c := &connCounter{next: p.m.CodecObserver(name, proto)}
	if lc.Protocol == config.ProtocolHTTP {
		c.state = p.m.ConnState(name, proto)
	}
	return c
}

func (c *connCounter) ConnOpened()               { c.open.Add(1); c.next.ConnOpened() }
func (c *connCounter) ConnClosed()               { c.open.Add(-1); c.next.ConnClosed() }
func (c *connCounter) DecodeError(reason string) { c.next.DecodeError(reason) }
func (c *connCounter) Event(name string)         { c.next.Event(name) }

// connState observes an httpfront server (a net/http.Server), which
// reports connection states instead of codec events.
func (c *connCounter) connState(conn net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		c.open.Add(1)
	case http.StateClosed, http.StateHijacked:
		c.open.Add(-1)
	}
	c.state(conn, st)
}

// namedBackend reports the backend's configured name to the request's Upstream.
// For a backend that is not a pool it also reports the time the backend
// took (a pool reports each instance attempt itself).
type namedBackend struct {
	name  string
	b     backends.Backend
	timed bool
}

func (n namedBackend) Serve(w http.ResponseWriter, r *http.Request) error {
	up := backends.UpstreamFromContext(r.Context())
	up.SetBackend(n.name)
	if !n.timed {
		return n.b.Serve(w, r)
	}
	start := time.Now()
	err := n.b.Serve(w, r)
	up.SetUpstreamTime(time.Since(start))
	return err
}
