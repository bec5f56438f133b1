// Package freeport picks loopback ports for tests that start a peer (nginx,
// dnsmasq, a junction process) which must be told its port before it binds.
//
// A port found by listening on :0 and closing again comes from the kernel's
// ephemeral range, the same range the kernel hands out as the local port of
// every outgoing connection. While other tests run beside it, a client
// socket can take that port before the peer binds it, and the peer then
// fails with "Address already in use". Port returns a port below (or above)
// the ephemeral range instead, which the kernel never assigns by itself, and
// checks that TCP and UDP on 127.0.0.1 are both free there a moment ago.
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// lowest is the bottom of the range Port picks from when the ephemeral
// range leaves room below it: clear of the well-known and common service
// ports (8080, 9000, 9090…), so a peer on this machine is not hit either.
const lowest = 10000

// Port returns a port on 127.0.0.1 that is outside the kernel's ephemeral
// range and was free for TCP and UDP a moment ago.
func Port(t testing.TB) int {
	t.Helper()
	return PortOn(t, "127.0.0.1")
}

// PortOn is Port for another loopback address (127.0.0.5, ::1).
func PortOn(t testing.TB, host string) int {
	t.Helper()
	lo, hi := span(ephemeral())
	for range 200 {
		p := lo + rand.IntN(hi-lo+1)
		if free(host, p) {
			return p
		}
	}
	// Nothing free outside the ephemeral range: let the kernel choose.
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr returns "127.0.0.1:PORT" for a Port.
func Addr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(t)))
}

// ephemeral reads the kernel's local port range; Linux's default when it
// cannot be read.
func ephemeral() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l > h {
		return lo, hi
	}
	return l, h
}

// span is the range to pick from given the ephemeral one [elo, ehi]: the
// larger of the gaps below and above it.
func span(elo, ehi int) (lo, hi int) {
	below := elo - 1 - lowest
	above := 65535 - (ehi + 1)
	if below >= above {
		return lowest, max(elo-1, lowest)
	}
	return ehi + 1, 65535
}

func free(host string, port int) bool {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}
