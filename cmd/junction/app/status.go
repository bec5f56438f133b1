package app

import (
	"fmt"
	"net/http"

	"github.com/junction-gw/junction/cmd/junction/internal/status"
)

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
			l.Address = f.sock.ln.Addr().String()
		}
		if f.conns != nil {
			l.OpenConns = int(f.conns.open.Load())
		}
		s.Listeners = append(s.Listeners, l)
	}
	for _, r := range g.cfg.Routes {
		s.Routes = append(s.Routes, status.Route{Pattern: r.Prefix + "*", Backend: r.Backend})
	}
	for _, lc := range g.cfg.Listeners {
		if lc.Backend != "" {
			s.Routes = append(s.Routes, status.Route{Pattern: "anything else on " + lc.Address, Backend: lc.Backend})
		}
	}
	for _, ps := range a.PoolStatuses() {
		s.Pools = append(s.Pools, status.FromPool(ps))
	}
	for _, name := range sortedNames(g.cgis) {
		st := g.cgis[name].backend.Stats()
		s.CGI = append(s.CGI, status.CGI{Name: name, InUse: st.InUse, Max: st.Max, Queue: st.Queue, Timeouts: st.Timeouts})
	}
	return s
}
