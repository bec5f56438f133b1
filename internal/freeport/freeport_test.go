package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestSpan(t *testing.T) {
	for _, tt := range []struct{ elo, ehi, lo, hi int }{
		{32768, 60999, lowest, 32767}, // Linux's default
		{1024, 65000, 65001, 65535},   // nothing below: the gap above
		{49152, 65535, lowest, 49151}, // IANA's range
	} {
		if lo, hi := span(tt.elo, tt.ehi); lo != tt.lo || hi != tt.hi {
			t.Errorf("span(%d, %d) = %d, %d; want %d, %d", tt.elo, tt.ehi, lo, hi, tt.lo, tt.hi)
		}
	}
}

// TestPortOutsideEphemeral checks that the port is outside the kernel's
// range and that a peer can bind it for TCP and UDP.
func TestPortOutsideEphemeral(t *testing.T) {
	elo, ehi := ephemeral()
	for range 20 {
		p := Port(t)
		if p >= elo && p <= ehi {
			t.Fatalf("port %d is in the ephemeral range %d-%d", p, elo, ehi)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		u.Close()
		l.Close()
	}
}

// TestPortSkipsTaken holds a port for UDP only and checks free refuses it.
func TestPortSkipsTaken(t *testing.T) {
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if free("127.0.0.1", u.LocalAddr().(*net.UDPAddr).Port) {
		t.Error("a port held for UDP was reported free")
	}
}
