package httpfront

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestStalledBodyTimesOut: a client that sends its head and part of its
// body, then nothing, must not hold the handler beyond ReadTimeout per read.
func TestStalledBodyTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	s := &Server{
		ReadTimeout: 200 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			readErr <- err
		}),
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the body read succeeded with 90 bytes missing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler still waits for a body the client stopped sending")
	}
}

// TestSlowBodyIsNotCut: the timeout is per read, not for the whole body.
func TestSlowBodyIsNotCut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	s := &Server{
		ReadTimeout: time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(b)
		}),
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
	for _, part := range []string{"ab", "cd", "ef", "gh"} {
		time.Sleep(400 * time.Millisecond) // each gap is well under the timeout; their sum is over it
		c.Write([]byte(part))
	}
	if s := <-got; s != "abcdefgh" {
		t.Errorf("body %q, want abcdefgh", s)
	}
}

// TestStalledBodyGetsNoResponse: a request whose body stalled past
// ReadTimeout did not arrive whole; its handler, finding the request's
// context cancelled, writes nothing (as backends.WriteError does for a
// client gone), and the client must not get net/http's implicit 200 for
// it: the connection closes without a response.
func TestStalledBodyGetsNoResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		ReadTimeout: 200 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.ReadAll(r.Body); err != nil && r.Context().Err() != nil {
				return // the client is taken for gone
			}
			io.WriteString(w, "complete")
		}),
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	for _, head := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n",
	} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, head)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			t.Errorf("%q: answered %s, want the connection closed without a response", head, resp.Status)
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%q: neither a response nor the connection closed", head)
		}
	}
}
