package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/junction-gw/junction/cmd/junction/internal/metrics"
	"github.com/junction-gw/junction/cmd/junction/internal/sockets"
	"github.com/junction-gw/junction/cmd/junction/internal/status"
	"github.com/junction-gw/junction/config"
)

// listenAdmin binds the operations listener, if configured.
func (p *ops) listenAdmin(cfg *config.Config) error {
	if cfg.Metrics.Address == "" {
		return nil
	}
	ln, err := sockets.Listen(cfg.Metrics.Address, sockets.Options{})
	if err != nil {
		return fmt.Errorf("app: metrics.address: %w", err)
	}
	p.adminLn = ln
	return nil
}

// adminHandler serves /metrics, /healthz, /readyz, /status and
// /status.json.
func (a *App) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mh := metrics.Handler(a.ops.reg, a.ops.ready.Load)
	mux.Handle("/metrics", mh)
	mux.Handle("/healthz", mh)
	mux.Handle("/readyz", mh)
	sh := statusHandler(a)
	mux.Handle("/status", sh)
	mux.Handle("/status.json", sh)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status", http.StatusFound)
	})
	return mux
}

// serveAdmin starts the operations server in the run group. a.mu is held.
func (a *App) serveAdmin() {
	p := a.ops
	if p.adminLn == nil {
		return
	}
	p.admin = &http.Server{
		Handler: a.adminHandler(),
		// Scrapers and browsers send small requests and read promptly.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.With("listener", "metrics").Handler(), slog.LevelWarn),
	}
	srv, ln := p.admin, p.adminLn
	a.log.Info("operations listener", "address", ln.Addr().String(), "paths", "/metrics /healthz /readyz /status /status.json")
	a.group.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("app: metrics listener %s: %w", ln.Addr(), err)
		}
		return nil
	})
}

// stopAdmin ends the operations server after everything else stopped, so
// the last scrape sees the shutdown.
func (a *App) stopAdmin() {
	p := a.ops
	if p.admin == nil {
		if p.adminLn != nil {
			p.adminLn.Close()
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.admin.Shutdown(ctx); err != nil {
		p.admin.Close()
	}
}

// MetricsAddr returns the operations listener's bound address, or nil when
// there is none or before Listen.
func (a *App) MetricsAddr() net.Addr {
	if a.ops.adminLn == nil {
		return nil
	}
	return a.ops.adminLn.Addr()
}

// Registry returns the Prometheus registry the App's metrics are on.
func (a *App) Registry() *prometheus.Registry { return a.ops.reg }

// statusHandler serves the status page and its JSON from a's current
// state.
func statusHandler(a *App) http.Handler { return status.Handler(a.Status) }

// Status returns what the status page shows: listeners with their open
// connections, routes, pools with their instances, CGI backends' load,
// uptime and the configuration version.
func (a *App) Status() status.Snapshot {
	g := a.gen.Load()
	s := status.Snapshot{
		Version:       a.ops.version,
		Started:       a.ops.started,
		ConfigVersion: g.cfg.Version,
		ConfigLoaded:  g.loaded,
		ShuttingDown:  a.stopping.Load(),
		Listeners:     []status.Listener{},
		Routes:        []status.Route{},
		Pools:         []status.Pool{},
		CGI:           []status.CGI{},
	}
	a.mu.Lock()
	fronts := append([]*front(nil), a.fronts...)
	a.mu.Unlock()
	for i, f := range fronts {
		l := status.Listener{Name: fmt.Sprintf("listeners[%d]", i), Protocol: protocolLabel(f.cfg.Protocol), Address: f.cfg.Address}
		if f.sock != nil {
			l.Address = f.sock.Addr().String()
		}
		if f.conns != nil {
			l.OpenConns = int(f.conns.open.Load())
		}
		s.Listeners = append(s.Listeners, l)
	}
	for i, r := range g.cfg.Routes {
		sr := status.Route{Pattern: r.Prefix + "*", Backend: r.Backend, CGI: routeCGIStatus(r)}
		if sb := g.shadows[i]; sb != nil {
			st := sb.Stats()
			sr.Shadow = &status.Shadow{Stats: st, MatchRate: st.MatchRate()}
		}
		if az := g.authorizers[i]; az != nil && r.Authorizer != nil {
			sr.Authorizer = &status.Authorizer{Instances: r.Authorizer.Instances, Script: r.Authorizer.Script, Stats: az.Stats()}
		}
		s.Routes = append(s.Routes, sr)
	}
	for _, lc := range g.cfg.Listeners {
		if lc.Backend != "" {
			s.Routes = append(s.Routes, status.Route{Pattern: "anything else on " + lc.Address, Backend: lc.Backend})
		}
	}
	for _, ps := range a.PoolStatuses() {
		sp := status.FromPool(ps)
		if u := g.pools[ps.Name]; u != nil {
			sp.Source, sp.Discovery = sourceStatus(u.Source())
		}
		s.Pools = append(s.Pools, sp)
	}
	for _, name := range sortedNames(g.cgis) {
		st := g.cgis[name].backend.Stats()
		s.CGI = append(s.CGI, status.CGI{Name: name, InUse: st.InUse, Max: st.Max, Queue: st.Queue, Timeouts: st.Timeouts})
	}
	return s
}

// routeCGIStatus is what route r sets for itself on its cgi backend
// (limits.go), or nil when it sets nothing.
func routeCGIStatus(r config.Route) *status.RouteCGI {
	if !r.HasOverrides() {
		return nil
	}
	c := &status.RouteCGI{TimeoutSeconds: r.Timeout.Seconds(), MaxConcurrent: r.MaxConcurrent}
	if l := r.Limits; l != nil && *l != (config.Limits{}) {
		c.Limits = &status.Limits{CPUSeconds: l.CPU.Seconds(), MemoryBytes: int64(l.Memory), Processes: l.Processes,
			OpenFiles: l.OpenFiles, FileSizeBytes: int64(l.FileSize), Nice: l.Nice}
	}
	if *c == (status.RouteCGI{}) {
		return nil // limits: {} sets nothing
	}
	return c
}
