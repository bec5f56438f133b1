// Package sockets gives junction its sockets: it binds listening sockets
// (TCP, and unix sockets with their file's mode and owner), takes the
// listening sockets junction inherits (fd:N from a web server that spawned
// it, systemd socket activation), and turns the connection inetd hands
// over on standard input and output into a net.Conn.
//
// Listen accepts the listener addresses of junction's configuration:
//
//	host:port      TCP; an inherited systemd socket bound there is used
//	unix:/path     unix socket; likewise
//	unix:@name     Linux abstract unix socket; likewise
//	fd:N           a listening socket inherited on descriptor N (fd:0 from
//	               lighttpd bin-path, spawn-fcgi, Apache mod_fcgid)
//	systemd:NAME   the systemd socket named NAME (FileDescriptorName=)
//	systemd        the next systemd socket no earlier listener took
//
// host:port and unix: addresses are parsed by internal/sockaddr, as
// everywhere else in junction.
package sockets

import (
	"context"
	"fmt"
	"io/fs"
	"net"

	"github.com/junction-gw/junction/internal/sockaddr"
)

// Options are a listener's settings beyond its address.
type Options struct {
	// Mode, if not zero, is the permission bits of a unix socket's file.
	Mode fs.FileMode
	// Owner and Group, if set, own a unix socket's file: a name or a
	// numeric id each.
	Owner, Group string
	// FromStdin, if set, takes the listening socket for "fd:0" in place
	// of the generic check, for a protocol with its own hand-over
	// convention (FastCGI's FCGI_LISTENSOCK_FILENO: fastcgi.ListenerFromStdin).
	// It reports false when standard input is not such a socket.
	FromStdin func() (net.Listener, bool)
}

// Listen returns the listening socket for addr (see the package
// documentation): inherited when the address says so or matches an
// inherited socket, bound otherwise.
func Listen(addr string, o Options) (net.Listener, error) {
	return activation().listen(addr, o)
}

// bind binds a, which no inherited socket matched.
func bind(a sockaddr.Addr, o Options) (net.Listener, error) {
	if a.Network == "unix" {
		return listenUnix(a, o)
	}
	// No TCP keep-alive probes on accepted connections: every listener
	// has an idle_timeout, and the four setsockopt calls per connection
	// are a measurable share of a per-request SCGI connection's cost.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", a.Address)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}
