package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/junction-gw/junction/config"
	"github.com/junction-gw/junction/protocols/ajp13"
	"github.com/junction-gw/junction/protocols/fastcgi"
	"github.com/junction-gw/junction/protocols/httpfront"
	"github.com/junction-gw/junction/protocols/scgi"
)

// server is the method set every codec server shares with *http.Server.
type server interface {
	Serve(net.Listener) error
	ServeConn(ctx context.Context, c net.Conn) error
	Shutdown(context.Context) error
	Close() error
}

// newServer builds the codec server for one listener. Each protocol has
// its own function below; add a case here for a new codec.
func newServer(l config.Listener, h http.Handler, log *slog.Logger) (server, error) {
	log = log.With("protocol", l.Protocol, "listener", l.Address)
	switch l.Protocol {
	case config.ProtocolSCGI:
		return newSCGI(l, h, log), nil
	case config.ProtocolHTTP:
		return newHTTP(l, h, log), nil
	case config.ProtocolAJP:
		return newAJP(l, h, log), nil
	case config.ProtocolFastCGI:
		return newFastCGI(l, h, log)
	default:
		return nil, fmt.Errorf("protocol %q is not built into this junction yet", l.Protocol)
	}
}

func newSCGI(l config.Listener, h http.Handler, log *slog.Logger) server {
	return &scgi.Server{
		Handler:        h,
		MaxHeaderBytes: l.MaxHeaderBytes,
		ReadTimeout:    l.ReadTimeout,
		IdleTimeout:    l.IdleTimeout,
		WriteTimeout:   l.WriteTimeout,
		Logger:         log,
	}
}

func newHTTP(l config.Listener, h http.Handler, log *slog.Logger) server {
	return &httpfront.Server{
		Handler:        h,
		MaxHeaderBytes: l.MaxHeaderBytes,
		ReadTimeout:    l.ReadTimeout,
		IdleTimeout:    l.IdleTimeout,
		WriteTimeout:   l.WriteTimeout,
		Logger:         log,
	}
}

func newAJP(l config.Listener, h http.Handler, log *slog.Logger) server {
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
	}
}

// newFastCGI maps a fastcgi listener. A web server that spawned junction
// (lighttpd bin-path, spawn-fcgi, mod_fcgid) may restrict its peers with
// FCGI_WEB_SERVER_ADDRS in the environment.
func newFastCGI(l config.Listener, h http.Handler, log *slog.Logger) (server, error) {
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
		WebServerAddrs:     addrs,
		Logger:             log,
	}, nil
}
