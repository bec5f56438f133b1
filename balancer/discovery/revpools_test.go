package discovery

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// searchDNS is a resolver with a search domain whose zone has a wildcard
// record, as /etc/resolv.conf's "search corp.example" with "ndots:5" (a
// Kubernetes pod's) gives: a name that is not rooted is tried with the
// suffix first, and the wildcard answers it.
type searchDNS struct {
	*fakeDNS
	asked []string
}

func (s *searchDNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	s.asked = append(s.asked, host)
	if !strings.HasSuffix(host, ".") {
		return addrs("192.0.2.66"), nil // *.corp.example
	}
	return s.fakeDNS.LookupNetIP(ctx, network, strings.TrimSuffix(host, "."))
}

// TestSRVTargetsRooted: an SRV record's target is a full name (RFC 2782);
// looked up as a relative one, the resolver's search list may turn it
// into another name with another address.
func TestSRVTargetsRooted(t *testing.T) {
	f := newFakeDNS()
	f.srv["_app._tcp.service.consul"] = []*net.SRV{
		{Target: "node1.node.dc1.consul.", Port: 21000, Priority: 1, Weight: 1},
		{Target: "node2.node.dc1.consul.", Port: 21000, Priority: 1, Weight: 1},
	}
	f.hosts["node1.node.dc1.consul"] = addrs("10.1.0.1")
	f.hosts["node2.node.dc1.consul"] = addrs("10.1.0.2")
	r := &searchDNS{fakeDNS: f}
	w, err := New(Options{SRV: "_app._tcp.service.consul", Resolver: r, Apply: nop})
	if err != nil {
		t.Fatal(err)
	}
	set, err := w.Lookup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := "node1.node.dc1.consul:21000=10.1.0.1:21000/w1 node2.node.dc1.consul:21000=10.1.0.2:21000/w1"
	if got := names(set); got != want {
		t.Errorf("got  %s\nwant %s (targets asked as %q)", got, want, r.asked)
	}
}
