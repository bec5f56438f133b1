package allowlist

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/junction-gw/junction/internal/keepopen"
)

func TestParseEntry(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means an error
	}{
		{"10.0.0.5", "10.0.0.5/32"},
		{" 10.0.0.5 ", "10.0.0.5/32"},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"::1", "::1/128"},
		{"fd00::/8", "fd00::/8"},
		{"::ffff:10.0.0.5", "10.0.0.5/32"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"10.0.0.300", ""},
		{"10.0.0.0/33", ""},
		{"10.0.0.0/", ""},
		{"localhost", ""},
		{"fe80::1%eth0", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := ParseEntry(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParseEntry(%q) = %v, want an error", tt.in, got)
		case tt.want != "" && (err != nil || got.String() != tt.want):
			t.Errorf("ParseEntry(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := Parse([]string{"10.0.0.1", "x", "y"}); err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) != 2 {
		t.Errorf("Parse reported %v, want both bad entries", err)
	}
}

func TestAllows(t *testing.T) {
	list, err := Parse([]string{"127.0.0.1", "10.0.0.0/8", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	tests := []struct {
		addr net.Addr
		want bool
	}{
		{tcp("127.0.0.1:5000"), true},
		{tcp("127.0.0.2:5000"), false},
		{tcp("10.200.0.1:1"), true},
		{tcp("11.0.0.1:1"), false},
		// An IPv4 client of a dual-stack socket.
		{tcp("[::ffff:10.0.0.9]:1"), true},
		{tcp("[::ffff:127.0.0.2]:1"), false},
		{tcp("[2001:db8::5]:1"), true},
		{tcp("[2001:db9::5]:1"), false},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"}, false},
		{&net.UnixAddr{Name: "/run/j.sock", Net: "unix"}, false},
		{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, true},
		{nil, false},
	}
	for _, tt := range tests {
		if got := list.Allows(tt.addr); got != tt.want {
			t.Errorf("Allows(%v) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// dialFrom connects to addr from the local address from; Linux routes
// all of 127.0.0.0/8 to the loopback interface.
func dialFrom(t *testing.T, from string, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Skipf("dial from %s: %v (no 127/8 on lo?)", from, err)
	}
	return c
}

// TestWrap: over a keepopen listener (as junction serves every socket),
// a refused client is closed and Accept goes on to the next one; Close
// stops Accept and leaves the socket to the next server.
func TestWrap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	refused := make(chan string, 2)
	l := Wrap(keepopen.Wrap(ln), List{netip.MustParsePrefix("127.0.0.1/32")}, func(c net.Conn) {
		refused <- c.RemoteAddr().(*net.TCPAddr).IP.String()
	})

	out := dialFrom(t, "127.0.0.2", ln.Addr())
	defer out.Close()
	in := dialFrom(t, "127.0.0.1", ln.Addr())
	defer in.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.1" {
		t.Errorf("Accept returned a connection from %s", got)
	}
	c.Close()
	if got := <-refused; got != "127.0.0.2" {
		t.Errorf("refused %s, want 127.0.0.2", got)
	}
	out.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := out.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("refused client read %d, %v; want the connection closed", n, err)
	}

	errc := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	// A client refused while Accept waits does not end it: it returns
	// only net.ErrClosed, after Close.
	dialFrom(t, "127.0.0.3", ln.Addr()).Close()
	if got := <-refused; got != "127.0.0.3" {
		t.Errorf("refused %s, want 127.0.0.3", got)
	}
	l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after a refused client and Close = %v, want net.ErrClosed", err)
	}
	// The socket is still open for the next server.
	next := dialFrom(t, "127.0.0.1", ln.Addr())
	defer next.Close()
	c, err = Wrap(keepopen.Wrap(ln), List{netip.MustParsePrefix("127.0.0.0/8")}, nil).Accept()
	if err != nil {
		t.Fatalf("the next server's Accept: %v", err)
	}
	c.Close()
}

func TestWrapEmpty(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := Wrap(ln, nil, nil); got != ln {
		t.Errorf("Wrap with no list = %T, want the listener itself", got)
	}
}
