package discovery

import (
	"net"
	"strings"
	"testing"
	"time"
)

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
