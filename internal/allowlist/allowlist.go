// Package allowlist restricts which clients may connect to a TCP
// listener: a List of networks (single IP addresses or CIDR prefixes,
// IPv4 and IPv6), and Wrap, a net.Listener that closes every connection
// from outside the list as it is accepted, before a server sees it.
//
// Peers are matched by their IP address alone. An IPv4 client reaching
// an IPv6 socket ("::ffff:10.0.0.1") matches the IPv4 entries. A peer
// without an IP address (a unix socket) matches nothing: guard those
// with the socket file's mode and group instead.
package allowlist

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// List is a set of client networks. The empty List allows no one; Wrap
// treats it as "no restriction".
type List []netip.Prefix

// ParseEntry parses one entry: an IP address ("10.0.0.5", "::1") or a
// CIDR prefix ("10.0.0.0/8", "fd00::/8"). Host bits below a prefix's
// length are ignored ("10.1.2.3/8" is 10.0.0.0/8).
func ParseEntry(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("allowlist: %q is not an IP or CIDR", s)
		}
		a, bits := p.Addr(), p.Bits()
		if a.Is4In6() && bits >= 96 {
			a, bits = a.Unmap(), bits-96
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("allowlist: %q is not an IP or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Parse parses every entry (see ParseEntry), reporting each bad one.
func Parse(entries []string) (List, error) {
	list := make(List, 0, len(entries))
	var errs []error
	for _, e := range entries {
		p, err := ParseEntry(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		list = append(list, p)
	}
	return list, errors.Join(errs...)
}

// Allows reports whether a peer at addr is in the list.
func (list List) Allows(addr net.Addr) bool {
	ip, ok := peerIP(addr)
	if !ok {
		return false
	}
	for _, p := range list {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// peerIP returns addr's IP address, unmapped and without a zone.
func peerIP(addr net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	case nil:
		return netip.Addr{}, false
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	return ip.Unmap().WithZone(""), ip.IsValid()
}

// Wrap returns a listener over l that returns only connections from
// peers in list. Any other connection is closed as it is accepted, after
// refused (if not nil) was called with it, and Accept goes on waiting:
// a refused peer never ends a server's accept loop. With an empty list,
// Wrap returns l itself.
//
// Close, Addr and errors from Accept are l's, so Wrap composes with
// listeners that stop a server by their Close (internal/keepopen).
func Wrap(l net.Listener, list List, refused func(net.Conn)) net.Listener {
	if len(list) == 0 {
		return l
	}
	return &listener{Listener: l, list: list, refused: refused}
}

type listener struct {
	net.Listener
	list    List
	refused func(net.Conn)
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.list.Allows(c.RemoteAddr()) {
			return c, nil
		}
		if l.refused != nil {
			l.refused(c)
		}
		// The peer learns nothing beyond the closed connection; an error
		// closing it is of no use to anyone.
		_ = c.Close()
	}
}
