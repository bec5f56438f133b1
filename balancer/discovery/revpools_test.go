package discovery

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// searchDNS is a resolver with a search domain whose zone has a wildcard
// record, as /etc/resolv.conf's "search corp.example" with "ndots:5" (a
// Kubernetes pod's) gives: a name that is not rooted is tried with the
// suffix first, and the wildcard answers it.
type searchDNS struct {
	*fakeDNS
	mu    sync.Mutex
	asked []string
}

func (s *searchDNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	s.mu.Lock()
	s.asked = append(s.asked, host)
	s.mu.Unlock()
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
	got := names(lookup(t, Options{SRV: "_app._tcp.service.consul", Resolver: r, Apply: nop}))
	want := "node1.node.dc1.consul:21000=10.1.0.1:21000/w1 node2.node.dc1.consul:21000=10.1.0.2:21000/w1"
	if got != want {
		t.Errorf("got  %s\nwant %s (targets asked as %q)", got, want, r.asked)
	}
}

// TestSRVDuplicates: records that name one socket twice make one
// instance, the same whatever order the resolver shuffled the records
// into (Go's randomizes them by weight): two targets resolving to the
// same address and port (two pool members on one php-fpm would double its
// bound), and one target and port listed twice with different weights.
func TestSRVDuplicates(t *testing.T) {
	recs := []*net.SRV{
		{Target: "b.x.", Port: 80, Priority: 1, Weight: 30},
		{Target: "a.x.", Port: 80, Priority: 1, Weight: 10},
		{Target: "c.x.", Port: 80, Priority: 1, Weight: 5},
		{Target: "c.x.", Port: 80, Priority: 1, Weight: 50},
		{Target: "d.x.", Port: 80, Priority: 2, Weight: 1}, // a backup on a.x's socket
	}
	want := "a.x:80=10.0.0.1:80/w30 c.x:80=10.0.0.3:80/w50"
	for _, order := range [][]int{{0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}, {2, 4, 0, 3, 1}} {
		f := newFakeDNS()
		for _, i := range order {
			f.srv["_app._tcp.x"] = append(f.srv["_app._tcp.x"], recs[i])
		}
		f.hosts["a.x"] = addrs("10.0.0.1")
		f.hosts["b.x"] = addrs("10.0.0.1")
		f.hosts["c.x"] = addrs("10.0.0.3")
		f.hosts["d.x"] = addrs("10.0.0.1")
		got := names(lookup(t, Options{SRV: "_app._tcp.x", Resolver: f, Apply: nop}))
		if got != want {
			t.Errorf("records in order %v: got  %s\nwant %s", order, got, want)
		}
	}
}

// gatheringDNS answers a target's lookup only once n of them are asked
// at the same time (or the lookup's context ends): a resolver far enough
// away that one lookup after another would not fit in the timeout.
type gatheringDNS struct {
	*fakeDNS
	n       int
	mu      sync.Mutex
	waiting int
	all     chan struct{}
}

func (g *gatheringDNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	g.mu.Lock()
	g.waiting++
	if g.waiting == g.n {
		close(g.all)
	}
	g.mu.Unlock()
	select {
	case <-g.all:
	case <-ctx.Done():
		return nil, &net.DNSError{Err: "i/o timeout", Name: host, IsTimeout: true}
	}
	return g.fakeDNS.LookupNetIP(ctx, network, host)
}

// TestSRVTargetsTogether: an SRV answer's targets are looked up
// concurrently, so hundreds of them fit in one lookup's timeout.
func TestSRVTargetsTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 40 // more than maxTargetLookups
		f := newFakeDNS()
		for i := range n {
			target := fmt.Sprintf("n%02d.x", i)
			f.srv["_app._tcp.x"] = append(f.srv["_app._tcp.x"], &net.SRV{Target: target + ".", Port: 80, Weight: 1})
			f.hosts[target] = addrs(fmt.Sprintf("10.0.0.%d", i+1))
		}
		g := &gatheringDNS{fakeDNS: f, n: maxTargetLookups, all: make(chan struct{})}
		w, err := New(Options{SRV: "_app._tcp.x", Resolver: g, Apply: nop, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		set, err := w.Lookup(ctx)
		if err != nil || len(set) != n {
			t.Fatalf("%d instances (%v), want %d", len(set), err, n)
		}
	})
}

// TestLookupTimeout: a DNS server that never answers (UDP datagrams read
// and dropped, TCP connections accepted and left silent) does not stall
// the watcher: the lookup ends with Timeout and counts as a failure.
func TestLookupTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	addr := pc.LocalAddr().String()
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	for _, o := range []Options{{DNS: "app.test:80"}, {SRV: "_app._tcp.test"}} {
		o.Server, o.Apply, o.Timeout = addr, nop, 200*time.Millisecond
		w, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		w.refresh(t.Context())
		st := w.Status()
		if !st.Failing || !strings.Contains(st.LastError, "timeout") {
			t.Errorf("%+v: status %+v after a silent server", o, st)
		}
		t.Logf("%s%s: lookup ended after %v: %s", o.DNS, o.SRV, time.Since(start), st.LastError)
	}
}

// exactDNS answers LookupNetIP for exactly the names it has, as Go's
// /etc/hosts lookup does for a single-label name ("web" is found, "web."
// is not).
type exactDNS struct {
	*fakeDNS
	exact map[string][]netip.Addr
}

func (e *exactDNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := e.exact[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestSRVSingleLabelTarget: a single-label target ("web.", as a local
// dnsmasq serving /etc/hosts names may answer) is looked up as the name
// itself, which Go finds in /etc/hosts only without the dot; a target of
// several labels is looked up rooted.
func TestSRVSingleLabelTarget(t *testing.T) {
	f := newFakeDNS()
	f.srv["_app._tcp.x"] = []*net.SRV{
		{Target: "web.", Port: 8080, Weight: 1},
		{Target: "api.x.", Port: 8081, Weight: 1},
	}
	r := &exactDNS{fakeDNS: f, exact: map[string][]netip.Addr{"web": addrs("127.0.0.7"), "api.x.": addrs("127.0.0.8")}}
	got := names(lookup(t, Options{SRV: "_app._tcp.x", Resolver: r, Apply: nop}))
	if want := "api.x:8081=127.0.0.8:8081/w1 web:8080=127.0.0.7:8080/w1"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
