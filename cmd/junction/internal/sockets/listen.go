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
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

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

// listenUnix binds a unix socket: for a path (not an abstract name) it
// creates the parent directory, replaces a stale socket file (one nobody
// listens on), and applies the configured mode and owner.
func listenUnix(a sockaddr.Addr, o Options) (net.Listener, error) {
	path, isFile := a.Path()
	if isFile {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		if err := removeStale(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", a.Address)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if !isFile {
		return ln, nil
	}
	if err := setOwnerMode(path, o); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// removeStale removes path if it is a socket that nobody accepts on (left
// over by a junction that was killed). Anything else there is an error:
// junction never deletes a regular file or a live socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("listen: %s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("listen: %s is in use by another process", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("listen: cannot tell whether %s is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("listen: removing stale socket: %w", err)
	}
	return nil
}

func setOwnerMode(path string, o Options) error {
	if o.Owner != "" || o.Group != "" {
		uid, gid := -1, -1
		var err error
		if o.Owner != "" {
			if uid, err = lookupID(o.Owner, userID); err != nil {
				return fmt.Errorf("socket_owner: %w", err)
			}
		}
		if o.Group != "" {
			if gid, err = lookupID(o.Group, groupID); err != nil {
				return fmt.Errorf("socket_group: %w", err)
			}
		}
		if err := os.Chown(path, uid, gid); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	if o.Mode != 0 {
		if err := os.Chmod(path, o.Mode); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	return nil
}

// lookupID resolves a user or group given by name or numeric id.
func lookupID(name string, byName func(string) (string, error)) (int, error) {
	if id, err := strconv.Atoi(name); err == nil && id >= 0 {
		return id, nil
	}
	s, err := byName(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

func userID(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

func groupID(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}
