package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeDNS is a scripted Resolver.
type fakeDNS struct {
	mu    sync.Mutex
	hosts map[string][]netip.Addr
	srv   map[string][]*net.SRV
	fail  error // every lookup fails with it when set
	failf func(call int) error
	calls int
}

func (f *fakeDNS) failure() error {
	if f.failf != nil {
		return f.failf(f.calls)
	}
	return f.fail
}

func newFakeDNS() *fakeDNS {
	return &fakeDNS{hosts: map[string][]netip.Addr{}, srv: map[string][]*net.SRV{}}
}

func (f *fakeDNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := f.failure(); err != nil {
		return nil, err
	}
	a, ok := f.hosts[strings.TrimSuffix(host, ".")]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return append([]netip.Addr(nil), a...), nil
}

func (f *fakeDNS) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := f.failure(); err != nil {
		return "", nil, err
	}
	r, ok := f.srv[name]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return name + ".", append([]*net.SRV(nil), r...), nil
}

func (f *fakeDNS) set(do func(f *fakeDNS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	do(f)
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func names(set []Instance) string {
	var b strings.Builder
	for _, in := range set {
		fmt.Fprintf(&b, "%s=%s/w%d", in.Name, in.Addr, in.Weight)
		if in.Backup {
			b.WriteString("/backup")
		}
		b.WriteString(" ")
	}
	return strings.TrimSpace(b.String())
}

func nop(context.Context, []Instance) bool { return true }

// lookup makes a Watcher of o (Apply nop unless set) and returns what
// its first lookup finds.
func lookup(t *testing.T, o Options) []Instance {
	t.Helper()
	if o.Apply == nil {
		o.Apply = nop
	}
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	set, err := w.Lookup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestLookupDNS(t *testing.T) {
	f := newFakeDNS()
	f.hosts["app.service.consul"] = addrs("10.0.0.3", "10.0.0.1", "::ffff:10.0.0.1", "2001:db8::7")
	got := names(lookup(t, Options{DNS: "app.service.consul:8080", Resolver: f, Apply: nop}))
	want := "10.0.0.1:8080=10.0.0.1:8080/w1 10.0.0.3:8080=10.0.0.3:8080/w1 [2001:db8::7]:8080=[2001:db8::7]:8080/w1"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestLookupSRV(t *testing.T) {
	f := newFakeDNS()
	f.srv["_app._tcp.service.consul"] = []*net.SRV{
		{Target: "node2.node.dc1.consul.", Port: 21000, Priority: 1, Weight: 10},
		{Target: "node1.node.dc1.consul.", Port: 21000, Priority: 1, Weight: 30},
		{Target: "spare.node.dc1.consul.", Port: 9000, Priority: 5, Weight: 0},
		{Target: ".", Port: 0, Priority: 0, Weight: 0}, // RFC 2782: not here
		{Target: "node1.node.dc1.consul.", Port: 21000, Priority: 7, Weight: 1},
	}
	f.hosts["node1.node.dc1.consul"] = addrs("2001:db8::1", "10.1.0.1")
	f.hosts["node2.node.dc1.consul"] = addrs("10.1.0.2")
	f.hosts["spare.node.dc1.consul"] = addrs("10.1.0.9")
	w, err := New(Options{SRV: "_app._tcp.service.consul", Resolver: f, Apply: nop})
	if err != nil {
		t.Fatal(err)
	}
	set, err := w.Lookup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := "node1.node.dc1.consul:21000=10.1.0.1:21000/w30 node2.node.dc1.consul:21000=10.1.0.2:21000/w10 " +
		"spare.node.dc1.consul:9000=10.1.0.9:9000/w1/backup"
	if got := names(set); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	// A target that stops resolving keeps its last address; a new one
	// that does not resolve is left out; both are reported.
	var counted []error
	w.o.OnError = func(err error) { counted = append(counted, err) }
	f.set(func(f *fakeDNS) {
		delete(f.hosts, "node2.node.dc1.consul")
		f.srv["_app._tcp.service.consul"] = append(f.srv["_app._tcp.service.consul"],
			&net.SRV{Target: "node3.node.dc1.consul.", Port: 21000, Priority: 1, Weight: 1})
	})
	set, err = w.Lookup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := names(set); got != want {
		t.Errorf("after target failures: got  %s\nwant %s", got, want)
	}
	if len(counted) != 1 || !strings.Contains(counted[0].Error(), "node3") || !strings.Contains(counted[0].Error(), "keeping 10.1.0.2") {
		t.Errorf("target errors: %v", counted)
	}
	if st := w.Status(); !strings.Contains(st.LastError, "node3") || st.Failing {
		t.Errorf("status %+v", st)
	}
}

func TestLookupErrors(t *testing.T) {
	f := newFakeDNS()
	f.srv["_empty._tcp.x"] = nil
	f.srv["_noaddr._tcp.x"] = []*net.SRV{{Target: "gone.x.", Port: 1, Weight: 1}}
	for _, o := range []Options{
		{DNS: "missing.x:80"},
		{SRV: "_missing._tcp.x"},
		{SRV: "_empty._tcp.x"},
		{SRV: "_noaddr._tcp.x"},
	} {
		o.Resolver, o.Apply = f, nop
		w, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		if set, err := w.Lookup(t.Context()); err == nil {
			t.Errorf("%+v: no error, set %s", o, names(set))
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{Apply: nop}, "one of dns and srv"},
		{Options{DNS: "a:1", SRV: "b", Apply: nop}, "not both"},
		{Options{DNS: "app", Apply: nop}, "want host:port"},
		{Options{DNS: "app:http", Apply: nop}, "not a number"},
		{Options{DNS: "app:0", Apply: nop}, "not a number"},
		{Options{DNS: "a..b:80", Apply: nop}, "empty"},
		{Options{DNS: "a b:80", Apply: nop}, "not allowed"},
		{Options{SRV: "_app._tcp.x:80", Apply: nop}, "without a port"},
		{Options{SRV: "x", Server: "127.0.0.1", Apply: nop}, "want host:port"},
		{Options{SRV: "x", Server: "127.0.0.1:99999", Apply: nop}, "not a number"},
		{Options{SRV: "x"}, "Apply"},
		{Options{SRV: "x", Refresh: -1, Apply: nop}, "negative"},
	} {
		_, err := New(tt.o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.o, err, tt.want)
		}
	}
}

// logCount counts log records at level Warn and above by message.
type logCount struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCount) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logCount) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// TestRunFollowsRecords drives Run on a fake clock: changes are applied
// within one refresh, unchanged answers are not re-applied, a failing
// lookup keeps the set and is logged once per change of state and
// counted every time, and a set Apply could not take whole is applied
// again.
func TestRunFollowsRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeDNS()
		f.hosts["app"] = addrs("10.0.0.1", "10.0.0.2")
		var mu sync.Mutex
		var applied []string
		complete := true
		errs := 0
		logs := &logCount{}
		w, err := New(Options{
			DNS: "app:80", Resolver: f, Refresh: time.Second,
			Apply: func(_ context.Context, set []Instance) bool {
				mu.Lock()
				defer mu.Unlock()
				applied = append(applied, names(set))
				return complete
			},
			OnError: func(error) { mu.Lock(); errs++; mu.Unlock() },
			Logger:  slog.New(slog.NewTextHandler(logs, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		<-w.Ready()
		state := func() ([]string, int) {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), applied...), errs
		}
		tick := func() { time.Sleep(time.Second); synctest.Wait() }
		if got, _ := state(); len(got) != 1 || got[0] != "10.0.0.1:80=10.0.0.1:80/w1 10.0.0.2:80=10.0.0.2:80/w1" {
			t.Fatalf("first apply %q", got)
		}
		tick()
		tick()
		if got, _ := state(); len(got) != 1 {
			t.Fatalf("unchanged answers re-applied: %q", got)
		}
		f.set(func(f *fakeDNS) { f.hosts["app"] = addrs("10.0.0.2", "10.0.0.3") })
		tick()
		if got, _ := state(); len(got) != 2 || got[1] != "10.0.0.2:80=10.0.0.2:80/w1 10.0.0.3:80=10.0.0.3:80/w1" {
			t.Fatalf("change not applied: %q", got)
		}
		before := w.Status().LastRefresh
		f.set(func(f *fakeDNS) { f.fail = errors.New("i/o timeout") })
		tick()
		tick()
		tick()
		got, nerr := state()
		if len(got) != 2 || nerr != 3 {
			t.Fatalf("failing lookups: applied %q, counted %d, want 2 sets and 3 errors", got, nerr)
		}
		if n := logs.count("discovery lookup failed"); n != 1 {
			t.Errorf("failure logged %d times, want once", n)
		}
		st := w.Status()
		if !st.Failing || st.LastError == "" || !st.LastRefresh.Equal(before) || st.Instances != 2 {
			t.Errorf("status while failing: %+v", st)
		}
		// The resolver's message names the query's ephemeral port: the
		// same failure reads differently each time.
		f.set(func(f *fakeDNS) {
			f.failf = func(n int) error {
				return &net.DNSError{Name: "app", Server: "127.0.0.1:53",
					Err: fmt.Sprintf("read udp 127.0.0.1:%d->127.0.0.1:53: read: connection refused", 40000+n)}
			}
		})
		tick()
		tick()
		tick()
		if n := logs.count("discovery lookup failed"); n != 2 {
			t.Errorf("a different failure, three times, logged %d times in all, want 2", n)
		}
		f.set(func(f *fakeDNS) { f.fail, f.failf = nil, nil })
		tick()
		if n := logs.count("discovery lookup works again"); n != 1 {
			t.Errorf("recovery logged %d times", n)
		}
		if got, _ := state(); len(got) != 2 {
			t.Errorf("same set re-applied after recovery: %q", got)
		}
		if st := w.Status(); st.Failing || !st.LastRefresh.After(before) {
			t.Errorf("status after recovery: %+v", st)
		}
		// Apply takes part of a set: the next refresh offers it again.
		mu.Lock()
		complete = false
		mu.Unlock()
		f.set(func(f *fakeDNS) { f.hosts["app"] = addrs("10.0.0.4") })
		tick()
		tick()
		mu.Lock()
		complete = true
		mu.Unlock()
		tick()
		tick()
		if got, _ := state(); len(got) != 5 {
			t.Errorf("partly applied set: applies %q, want it offered until taken (5 in all)", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
