package config

import (
	"fmt"
	"strings"

	"github.com/junction-gw/junction/internal/allowlist"
)

// validateAllow checks a listener's allow list: each entry an IP address
// or CIDR network, and only on a listener that has peer addresses.
func (l *Listener) validateAllow(v *validator, key string, unix bool) {
	if len(l.Allow) == 0 {
		return
	}
	if unix {
		v.add(key+".allow", "applies to TCP listeners only; a unix socket is guarded by socket_mode and socket_group")
		return
	}
	for i, e := range l.Allow {
		if _, err := allowlist.ParseEntry(e); err != nil {
			v.add(fmt.Sprintf("%s.allow[%d]", key, i), "%q is not an IP or CIDR", e)
		}
	}
}

// Warnings returns what is valid but unsafe in c, each "KEY: problem":
// an scgi or fastcgi listener on a TCP address other hosts can reach
// (every interface, or a non-loopback address) without an allow list.
// Those protocols carry no authentication: whoever connects may have any
// script run with any request variables. Listeners whose address is not
// known before they start (fd:N, systemd) are not checked. And a route
// shadowing methods other than GET and HEAD: those requests run twice.
// And an interpreter someone other than root may replace.
func (c *Config) Warnings() []string {
	var out []string
	for i, l := range c.Listeners {
		if l.Protocol != ProtocolSCGI && l.Protocol != ProtocolFastCGI || len(l.Allow) > 0 {
			continue
		}
		if !tcpAddress(l.Address) || loopback(l.Address) {
			continue
		}
		out = append(out, fmt.Sprintf("listeners[%d].allow: %s listener on %s accepts any client; set allow", i, l.Protocol, l.Address))
	}
	out = append(out, c.shadowWarnings()...)
	return append(out, c.interpreterWarnings()...)
}

// tcpAddress reports whether addr is a host:port address (not a unix
// socket or an inherited one).
func tcpAddress(addr string) bool {
	return addr != "" && !strings.HasPrefix(addr, "unix:") && !strings.HasPrefix(addr, "fd:") &&
		addr != "systemd" && !strings.HasPrefix(addr, "systemd:")
}
