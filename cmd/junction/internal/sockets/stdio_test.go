package sockets

import (
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestStdioConn checks both kinds of stdin inetd-style callers give us: a
// socket (inetd, systemd Accept=yes) and a pair of pipes.
func TestStdioConn(t *testing.T) {
	tests := []struct {
		name string
		// setup returns junction's stdin and stdout and the peer's ends.
		setup func(t *testing.T) (in, out *os.File, peer io.ReadWriter, closeWrite func())
	}{
		{"socket", func(t *testing.T) (*os.File, *os.File, io.ReadWriter, func()) {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
			t.Cleanup(func() { theirs.Close() })
			// Like inetd, stdin and stdout are the same socket.
			return ours, ours, theirs, func() { syscall.Shutdown(fds[1], syscall.SHUT_WR) }
		}},
		{"pipes", func(t *testing.T) (*os.File, *os.File, io.ReadWriter, func()) {
			inR, inW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			outR, outW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { inW.Close(); outR.Close() })
			peer := struct {
				io.Reader
				io.Writer
			}{outR, inW}
			return inR, outW, peer, func() { inW.Close() }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, out, peer, closeWrite := tt.setup(t)
			c, err := StdioConn(in, out)
			if err != nil {
				t.Fatal(err)
			}
			// The caller closes its own descriptors; the conn must live on.
			in.Close()
			out.Close()
			if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatalf("SetDeadline: %v", err)
			}
			if _, err := peer.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			closeWrite()
			got := make([]byte, 4)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
				t.Fatalf("read %q, %v; want ping", got, err)
			}
			if _, err := c.Write([]byte("pong")); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			// Closing the conn must end the stream for the peer.
			got, err = io.ReadAll(peer)
			if err != nil || string(got) != "pong" {
				t.Errorf("peer read %q, %v; want pong then EOF", got, err)
			}
		})
	}
}

// TestStdioConnReadDeadline checks that a silent peer cannot block a pipe
// read forever.
func TestStdioConnReadDeadline(t *testing.T) {
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	_, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c, err := StdioConn(inR, outW)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inR.Close()
	outW.Close()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !os.IsTimeout(err) {
		t.Errorf("Read = %v, want a timeout", err)
	}
}

// TestStdioConnPipeEOF checks that the end of an input pipe is not taken
// for a client that went away: Read waits for the deadline or Close.
func TestStdioConnPipeEOF(t *testing.T) {
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c, err := StdioConn(inR, outW)
	if err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	inW.Write([]byte("x"))
	inW.Close()
	buf := make([]byte, 8)
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Fatalf("first Read = %d, %v; want the byte written", n, err)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(buf); !os.IsTimeout(err) {
		t.Fatalf("Read at end of pipe = %v, want to wait for the deadline", err)
	}
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := c.Read(buf); done <- err }()
	c.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("Read after Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read at end of pipe did not return after Close")
	}
}
