package fastcgi

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/protocols/internal/connserver"
)

// TestServeTCP drives Serve on a real socket: MaxConns holds a second
// connection until the first ends, and Shutdown ends Serve.
func TestServeTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: testHandler(), Logger: quietLogger(), MaxConns: 1}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	ask := func(c net.Conn, wait time.Duration) error {
		c.SetDeadline(time.Now().Add(wait))
		if _, err := c.Write(rec(typeGetValues, 0, nv("FCGI_MAX_CONNS", ""))); err != nil {
			return err
		}
		r, _, err := newRecordReader(c).next()
		if err != nil {
			return err
		}
		if r.Type != typeGetValuesResult || !strings.Contains(string(r.content), "FCGI_MAX_CONNS1") {
			t.Errorf("answer %v %q", r.Type, r.content)
		}
		return nil
	}
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := ask(c1, 5*time.Second); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	// Not accepted while c1 is open: a short wait must see no answer.
	if err := ask(c2, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second connection answered beyond MaxConns: %v", err)
	}
	c1.Close()
	r, _, err := func() (record, int, error) {
		c2.SetDeadline(time.Now().Add(5 * time.Second))
		return newRecordReader(c2).next()
	}()
	if err != nil || r.Type != typeGetValuesResult {
		t.Fatalf("second connection after the first closed: %v %v", r.Type, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c2.Close()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, connserver.ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
}
