package rawconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// pair returns a wrapped client end and the plain server end of a
// connection over network ("tcp" or "unix").
func pair(t *testing.T, network string) (net.Conn, net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := net.Dial(network, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	w := Wrap(c)
	if _, ok := w.(*Conn); !ok {
		t.Fatalf("Wrap(%T) = %T, want *Conn", c, w)
	}
	s := <-accepted
	t.Cleanup(func() { w.Close(); s.Close() })
	return w, s
}

func TestReadWrite(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			c, s := pair(t, network)
			// Larger than any socket buffer: Write must wait for the
			// reader on the poller and still deliver every byte once.
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(s)
				got <- b
			}()
			n, err := c.Write(big)
			if err != nil || n != len(big) {
				t.Fatalf("Write = %d, %v", n, err)
			}
			c.(*Conn).Conn.(interface{ CloseWrite() error }).CloseWrite()
			if b := <-got; !bytes.Equal(b, big) {
				t.Fatalf("peer read %d bytes, want %d", len(b), len(big))
			}

			// Reads wait for data, return what is there, then EOF.
			go func() {
				s.Write([]byte("hello"))
				time.Sleep(20 * time.Millisecond)
				s.Write([]byte(" world"))
				s.Close()
			}()
			all, err := io.ReadAll(c)
			if err != nil || string(all) != "hello world" {
				t.Fatalf("ReadAll = %q, %v", all, err)
			}
			if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
				t.Errorf("Read after EOF = %d, %v", n, err)
			}
			if n, err := c.Read(nil); n != 0 || err != nil {
				t.Errorf("Read(nil) = %d, %v", n, err)
			}
		})
	}
}

func TestDeadlineAndClose(t *testing.T) {
	c, _ := pair(t, "tcp")
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read interrupted by Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
}

func TestPeerReset(t *testing.T) {
	c, s := pair(t, "tcp")
	// Unread data at close makes the peer send RST.
	s.(*net.TCPConn).SetLinger(0)
	s.Close()
	time.Sleep(20 * time.Millisecond)
	_, err := c.Read(make([]byte, 8))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after RST: %v, want ECONNRESET", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Addr == nil {
		t.Errorf("error %#v is not a *net.OpError naming the read and the peer", err)
	}
}

func TestWrapWithoutDescriptor(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if w := Wrap(a); w != a {
		t.Errorf("Wrap(net.Pipe end) = %T, want the end itself", w)
	}
}

// Quiet is true on an idle connection, false once the peer sent a byte or
// closed, and true for a connection without a descriptor.
func TestQuiet(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			c, s := pair(t, network)
			defer c.Close()
			if !Quiet(c) {
				t.Fatal("an idle connection is not quiet")
			}
			if _, err := s.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if Quiet(c) {
				t.Fatal("quiet with a byte to read")
			}
			buf := make([]byte, 1)
			if _, err := c.Read(buf); err != nil || buf[0] != 'x' {
				t.Fatalf("the peeked byte was lost: %q %v", buf, err)
			}
			if !Quiet(c) {
				t.Fatal("not quiet after the byte was read")
			}
			s.Close()
			if Quiet(c) {
				t.Fatal("quiet after the peer closed")
			}
		})
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if !Quiet(a) {
		t.Error("a connection without a descriptor counts as quiet")
	}
}

// A kept connection's last read deadline has usually passed by the time
// it is checked; Quiet answers for the socket, not for the deadline.
func TestQuietPastDeadline(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			c, s := pair(t, network)
			if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			if !Quiet(c) {
				t.Fatal("an idle connection with a past read deadline is not quiet")
			}
			if _, err := s.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if Quiet(c) {
				t.Fatal("quiet with a byte to read")
			}
			c.Close()
			if Quiet(c) {
				t.Fatal("a closed connection is quiet")
			}
		})
	}
}
