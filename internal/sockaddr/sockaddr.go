// Package sockaddr parses the socket addresses junction's configuration
// uses for listeners, app instances and spawned programs:
//
//	host:port      TCP; host may be a name, an IPv4 or a bracketed IPv6
//	               address, and is empty for "every address" (listeners)
//	unix:/path     a unix domain socket at an absolute path
//	unix:@name     a Linux abstract unix socket (no file)
//
// Every package that takes such an address parses it here, so a form that
// one accepts the others accept too.
package sockaddr

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Addr is a parsed address, ready for net.Dial or net.Listen.
type Addr struct {
	// Network is "tcp" or "unix".
	Network string
	// Address is "host:port" for tcp, the socket path (or "@name") for unix.
	Address string
}

// String returns the address in configuration form.
func (a Addr) String() string {
	if a.Network == "unix" {
		return "unix:" + a.Address
	}
	return a.Address
}

// Path reports whether a is a unix socket with a path (not abstract), and
// that path.
func (a Addr) Path() (string, bool) {
	if a.Network != "unix" || strings.HasPrefix(a.Address, "@") {
		return "", false
	}
	return a.Address, true
}

// UnixPath returns the path of a "unix:" address without checking it, and
// whether s is one.
func UnixPath(s string) (string, bool) { return strings.CutPrefix(s, "unix:") }

// Parse parses a listener address: host:port (host may be empty),
// unix:/path or unix:@name.
func Parse(s string) (Addr, error) {
	if s == "" {
		return Addr{}, errors.New("sockaddr: empty address (want host:port or unix:/path)")
	}
	if p, ok := UnixPath(s); ok {
		switch {
		case p == "":
			return Addr{}, errors.New("sockaddr: unix: needs a socket path")
		case strings.ContainsRune(p, 0):
			return Addr{}, fmt.Errorf("sockaddr: socket path %q contains NUL", p)
		case p == "@":
			return Addr{}, errors.New("sockaddr: unix:@ needs an abstract socket name")
		case !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "@"):
			return Addr{}, fmt.Errorf("sockaddr: unix socket path %q must be absolute", p)
		}
		return Addr{Network: "unix", Address: p}, nil
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return Addr{}, fmt.Errorf("sockaddr: %q is not host:port or unix:/path", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return Addr{}, fmt.Errorf("sockaddr: %q: port %q is not a number 0..65535", s, port)
	}
	return Addr{Network: "tcp", Address: s}, nil
}

// ParseDial parses the address of something to connect to: as Parse, and
// a TCP address needs a host and a port other than 0.
func ParseDial(s string) (Addr, error) {
	a, err := Parse(s)
	if err != nil || a.Network != "tcp" {
		return a, err
	}
	host, port, _ := net.SplitHostPort(s)
	if host == "" {
		return Addr{}, fmt.Errorf("sockaddr: %q needs a host (e.g. 127.0.0.1%s)", s, s)
	}
	if port == "0" {
		return Addr{}, fmt.Errorf("sockaddr: %q needs a port other than 0", s)
	}
	return a, nil
}
