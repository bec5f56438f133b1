package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/cmd/junction/internal/sockets"
	"github.com/junction-gw/junction/config"
	"github.com/junction-gw/junction/internal/allowlist"
	"github.com/junction-gw/junction/internal/keepopen"
	"github.com/junction-gw/junction/internal/spool"
	"github.com/junction-gw/junction/protocols/ajp13"
	"github.com/junction-gw/junction/protocols/fastcgi"
	"github.com/junction-gw/junction/protocols/httpfront"
	"github.com/junction-gw/junction/protocols/scgi"
)

// front is one configured listener with its server and, once bound, its
// socket. The handler stays for the front's life; reloads swap the router
// behind it. A reload that changes the listener's options hands the socket
// to a new front (handOver).
type front struct {
	cfg     config.Listener
	srv     server
	handler *handler
	sock    net.Listener  // nil before Listen
	retired atomic.Bool   // Serve's error is expected
	served  chan struct{} // closed when Serve returned
	conns   *connCounter  // open connections
}

// handler serves every request with the router current at its start.
type handler struct {
	rt atomic.Pointer[route]
}

// route is one configuration's router for a listener, with the requests
// still running through it: a reload drains removed pools only once the
// routers that could reach them are idle.
type route struct {
	*balancer.Router
	inflight atomic.Int64
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := h.rt.Load()
	rt.inflight.Add(1)
	defer rt.inflight.Add(-1)
	rt.ServeHTTP(w, r)
}

// swap installs rt and returns the route it replaced.
func (h *handler) swap(rt *balancer.Router) *route {
	return h.rt.Swap(&route{Router: rt})
}

func (a *App) newFront(lc config.Listener, g *generation) (*front, error) {
	h := &handler{}
	h.swap(g.router(lc, a.log))
	srv, conns, err := a.newFrontServer(lc, h)
	if err != nil {
		return nil, err
	}
	return &front{cfg: lc, srv: srv, handler: h, served: make(chan struct{}), conns: conns}, nil
}

// newFrontServer builds lc's codec server around h with the access log,
// metrics, connection counting and response spooling, after checking
// lc's allow list (applied by serve).
func (a *App) newFrontServer(lc config.Listener, h http.Handler) (server, *connCounter, error) {
	if _, err := allowlist.Parse(lc.Allow); err != nil {
		return nil, nil, err
	}
	obs := a.ops.observer(lc)
	h, budget := spooling(lc, h, a.log) // spool.go
	srv, err := newServer(lc, a.ops.wrap(lc, h), obs, budget, a.log)
	if err != nil {
		return nil, nil, err
	}
	return srv, obs, nil
}

// listen binds lc's socket, or takes the inherited one it names.
func listen(lc config.Listener) (net.Listener, error) {
	o := sockets.Options{Mode: lc.SocketMode.Perm(), Owner: lc.SocketOwner, Group: lc.SocketGroup}
	if lc.Protocol == config.ProtocolFastCGI {
		// fd:0 is FastCGI's FCGI_LISTENSOCK_FILENO hand-over.
		o.FromStdin = fastcgi.ListenerFromStdin
	}
	ln, err := sockets.Listen(lc.Address, o)
	if err != nil {
		return nil, err
	}
	if err := checkAllow(lc, ln); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// checkAllow refuses an allow list on a socket whose peers have no IP
// address: config rejects it on unix: addresses, but an inherited socket
// (fd:N, systemd) shows its kind only once it is taken.
func checkAllow(lc config.Listener, sock net.Listener) error {
	if _, ok := sock.Addr().(*net.TCPAddr); ok || len(lc.Allow) == 0 {
		return nil
	}
	return fmt.Errorf("allow: %s is a %s socket, not TCP; guard it with its file's mode and group", lc.Address, sock.Addr().Network())
}

// allowed applies f's allow list to l: a connection from another client
// is closed as it is accepted, logged once and counted as the decode
// error "not_allowed" of f's protocol.
func (a *App) allowed(f *front, l net.Listener) net.Listener {
	// newFrontServer refused a list that does not parse.
	list, _ := allowlist.Parse(f.cfg.Allow)
	addr := l.Addr().String()
	return allowlist.Wrap(l, list, func(c net.Conn) {
		f.conns.DecodeError("not_allowed")
		a.log.Warn("connection refused: client not in allow", "client", c.RemoteAddr().String(),
			"listener", addr, "protocol", f.cfg.Protocol)
	})
}

// serve starts f's server on f's socket in the run group. The server
// accepts through its own keepopen listener (its Shutdown stops its
// accept loop and leaves the socket open for a server that takes over),
// inside f's allow list.
// a.mu is held.
func (a *App) serve(f *front) {
	a.log.Info("listening", "protocol", f.cfg.Protocol, "address", f.sock.Addr().String(), "backend", f.cfg.Backend)
	srv, sock := f.srv, f.sock
	a.group.Go(func() error {
		defer close(f.served)
		err := srv.Serve(a.allowed(f, keepopen.Wrap(sock)))
		if a.stopping.Load() || f.retired.Load() {
			return nil
		}
		return fmt.Errorf("app: %s listener %s: %w", f.cfg.Protocol, sock.Addr(), err)
	})
}

// handOver moves old's socket to next, a server with new options: old
// stops accepting and finishes its connections in the background, and
// next serves the socket once old's accept loop has returned. Nobody
// accepts for that moment; the kernel's backlog holds what arrives, so
// no connection is refused, and one old accepted is served by old.
// a.mu is held.
func (a *App) handOver(old, next *front, timeout time.Duration) {
	a.retire(old, false, timeout)
	<-old.served
	a.serve(next)
}

// retire shuts f's server down gracefully in the background, and its
// socket too when closeSocket is set.
func (a *App) retire(f *front, closeSocket bool, timeout time.Duration) {
	f.retired.Store(true)
	a.draining.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		a.stop(ctx, f.srv, f.cfg.Protocol)
		if closeSocket {
			f.sock.Close()
		}
	})
}

// stop shuts srv down within ctx, then closes what is left.
func (a *App) stop(ctx context.Context, srv server, protocol string) {
	if err := srv.Shutdown(ctx); err != nil {
		a.log.Warn("graceful shutdown incomplete; closing connections", "protocol", protocol, "err", err)
		if err := srv.Close(); err != nil {
			a.log.Warn("close failed", "protocol", protocol, "err", err)
		}
	}
}

// sameAddress reports whether addr names f's socket: the same configured
// address, or the address it is bound to.
func sameAddress(f *front, addr string) bool {
	return f.cfg.Address == addr || f.sock != nil && f.sock.Addr().String() == addr
}

// server is the method set every codec server shares with *http.Server.
type server interface {
	Serve(net.Listener) error
	ServeConn(ctx context.Context, c net.Conn) error
	Shutdown(context.Context) error
	Close() error
}

// newServer builds the codec server for one listener, observed by obs;
// budget is the listener's spool budget (max_spool_bytes). Each protocol
// has its own function below; add a case here for a new codec.
func newServer(l config.Listener, h http.Handler, obs *connCounter, budget *spool.Budget, log *slog.Logger) (server, error) {
	log = log.With("protocol", l.Protocol, "listener", l.Address)
	switch l.Protocol {
	case config.ProtocolSCGI:
		return newSCGI(l, h, obs, log), nil
	case config.ProtocolHTTP:
		return newHTTP(l, h, obs, log), nil
	case config.ProtocolAJP:
		return newAJP(l, h, obs, log), nil
	case config.ProtocolFastCGI:
		return newFastCGI(l, h, obs, budget, log)
	default:
		return nil, fmt.Errorf("protocol %q is not built into this junction yet", l.Protocol)
	}
}

func newSCGI(l config.Listener, h http.Handler, obs *connCounter, log *slog.Logger) server {
	return &scgi.Server{
		Handler:        h,
		MaxHeaderBytes: l.MaxHeaderBytes,
		ReadTimeout:    l.ReadTimeout,
		IdleTimeout:    l.IdleTimeout,
		WriteTimeout:   l.WriteTimeout,
		Logger:         log,
		Observer:       obs,
	}
}

func newHTTP(l config.Listener, h http.Handler, obs *connCounter, log *slog.Logger) server {
	return &httpfront.Server{
		Handler:        h,
		MaxHeaderBytes: l.MaxHeaderBytes,
		ReadTimeout:    l.ReadTimeout,
		IdleTimeout:    l.IdleTimeout,
		WriteTimeout:   l.WriteTimeout,
		Logger:         log,
		ConnState:      obs.connState,
	}
}

func newAJP(l config.Listener, h http.Handler, obs *connCounter, log *slog.Logger) server {
	return &ajp13.Server{
		Handler:        h,
		PacketSize:     l.PacketSize,
		Secret:         l.Secret,
		Route:          l.Route,
		MaxHeaderBytes: l.MaxHeaderBytes,
		ReadTimeout:    l.ReadTimeout,
		IdleTimeout:    l.IdleTimeout,
		WriteTimeout:   l.WriteTimeout,
		Logger:         log,
		Observer:       obs,
	}
}

// newFastCGI maps a fastcgi listener. A web server that spawned junction
// (lighttpd bin-path, spawn-fcgi, mod_fcgid) may restrict its peers with
// FCGI_WEB_SERVER_ADDRS in the environment.
func newFastCGI(l config.Listener, h http.Handler, obs *connCounter, budget *spool.Budget, log *slog.Logger) (server, error) {
	addrs, err := fastcgi.WebServerAddrsFromEnv()
	if err != nil {
		return nil, err
	}
	return &fastcgi.Server{
		Handler:            h,
		MaxHeaderBytes:     l.MaxHeaderBytes,
		ReadTimeout:        l.ReadTimeout,
		IdleTimeout:        l.IdleTimeout,
		WriteTimeout:       l.WriteTimeout,
		MaxConns:           l.MaxConns,
		MaxRequests:        l.MaxRequests,
		MaxRequestsPerConn: l.MaxRequestsPerConn,
		Multiplex:          l.Multiplex,
		SpoolBudget:        budget,
		WebServerAddrs:     addrs,
		Logger:             log,
		Observer:           obs,
	}, nil
}
