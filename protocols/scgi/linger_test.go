package scgi

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readSpy tells when a read of the connection begins.
type readSpy struct {
	net.Conn
	reading chan struct{}
}

func (c *readSpy) Read(p []byte) (int, error) {
	select {
	case c.reading <- struct{}{}:
	default:
	}
	return c.Conn.Read(p)
}

// TestLeftBodyReaderDoesNotHoldConnection: a handler that returns while
// something it started still waits to read the body (the CGI backend's
// body feeder of a script that exited) leaves a read blocked on a peer
// that sends no more. The connection must end soon after the response,
// not when that read times out.
func TestLeftBodyReaderDoesNotHoldConnection(t *testing.T) {
	readerDone := make(chan struct{})
	client, server := net.Pipe()
	defer client.Close()
	spy := &readSpy{Conn: server, reading: make(chan struct{}, 1)}
	s := &Server{ReadTimeout: 5 * time.Second, Logger: discardLogger,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-spy.reading // the head's read
			go func() {
				defer close(readerDone)
				io.ReadAll(r.Body)
			}()
			<-spy.reading // that read of the body is blocked on the peer
			io.WriteString(w, "answered early")
		})}
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(context.Background(), spy) }()
	raw := request("POST", "/", strings.Repeat("b", 1000))
	client.Write([]byte(raw[:len(raw)-1000])) // the head, then nothing
	var out []byte
	for buf := make([]byte, 512); !strings.HasSuffix(string(out), "answered early"); {
		n, err := client.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			t.Fatalf("response %q: %v", out, err)
		}
	}
	answered := time.Now()
	go io.Copy(io.Discard, client)
	<-done
	if d := time.Since(answered); d > 2*time.Second {
		t.Errorf("connection ended %v after the response, want it soon after", d)
	}
	<-readerDone
}

// smallBuffers makes a socket's kernel buffer small, so that a peer
// writing a body nobody reads blocks at once.
func smallBuffers(opt int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 4096) })
		if err != nil {
			return err
		}
		return serr
	}
}

// TestUnreadBodyDoesNotResetResponse: a front server that sends the whole
// body before reading the response (Apache mod_proxy_scgi) gets the
// response of a handler that answered without reading the body. Closing
// the socket with the body unread would reset the connection: the peer's
// write fails and the response is lost.
func TestUnreadBodyDoesNotResetResponse(t *testing.T) {
	lc := net.ListenConfig{Control: smallBuffers(syscall.SO_RCVBUF)}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := &Server{Logger: discardLogger, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "answered without reading")
	})}
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		done <- s.ServeConn(context.Background(), c)
	}()
	d := net.Dialer{Control: smallBuffers(syscall.SO_SNDBUF)}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, werr := c.Write([]byte(request("POST", "/", strings.Repeat("b", 128<<10))))
	out, rerr := io.ReadAll(c)
	if werr != nil || rerr != nil || !strings.HasSuffix(string(out), "\r\n\r\nanswered without reading") {
		t.Errorf("peer sending the whole body first: write %v, read %v, response %q", werr, rerr, out)
	}
	<-done
}
