package scgi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/junction-gw/junction/protocols/internal/connserver"
	"github.com/junction-gw/junction/vars"
)

// FuzzServeConn feeds arbitrary bytes to a whole SCGI connection over
// net.Pipe, inside a synctest bubble: the server must never panic (the
// accept loop would hide it, so the Observer is asked), must end the
// connection on its own (a hang is a synctest deadlock), and must frame the
// request exactly as readHead and CONTENT_LENGTH say: the handler runs only
// for a head that decodes into a request, sees exactly CONTENT_LENGTH body
// bytes, and a body cut short fails the read instead of ending early.
//
// hangUp ends the front server's sending half once everything is written
// (a FIN, as nginx sends when its client goes away); otherwise the
// connection stays open and the server's own timeouts must end it.
//
// Seeds: the nginx scgi_pass captures in testdata/nginx and the fixtures
// below; the corpus grown by fuzzing is kept in testdata/fuzz/FuzzServeConn.
func FuzzServeConn(f *testing.F) {
	files, _ := filepath.Glob("testdata/nginx/*.scgi")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, false)
		f.Add(data, true)
		f.Add(data[:len(data)/2], true)
	}
	f.Add([]byte(request("POST", "/echo", "hello")+"trailing bytes"), false)
	f.Add([]byte(request("POST", "/echo", "hello")[:80]), false)
	f.Add([]byte(request("PUT", "/x", "")[:60]), true)
	f.Add([]byte(request("GET", "/%zz", "")), false)
	f.Add([]byte(head("CONTENT_LENGTH", "9", "SCGI", "1", "REQUEST_METHOD", "POST")+"short"), true)
	f.Add([]byte("0:,"), false)
	f.Add([]byte(""), false)
	f.Fuzz(func(t *testing.T, data []byte, hangUp bool) {
		synctest.Test(t, func(t *testing.T) { serveFuzzConn(t, data, hangUp) })
	})
}

// fuzzLimit is the head limit of the fuzzed server: small, so the fuzzer
// reaches it.
const fuzzLimit = 4096

// seen is what the fuzz handler saw of its request.
type seen struct {
	ran        bool
	method     string
	requestURI string
	body       []byte
	readErr    error
}

func serveFuzzConn(t *testing.T, data []byte, hangUp bool) {
	obs := &recorder{}
	var got seen
	s := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got.ran, got.method, got.requestURI = true, r.Method, r.RequestURI
			got.body, got.readErr = io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(got.body)
		}),
		MaxHeaderBytes: fuzzLimit,
		ReadTimeout:    time.Second,
		IdleTimeout:    2 * time.Second,
		Logger:         slog.New(slog.DiscardHandler),
		Observer:       obs,
	}
	client, server := net.Pipe()
	var conn net.Conn = server
	if hangUp {
		conn = &halfClosed{Conn: server, left: len(data)}
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(context.Background(), conn) }()
	go client.Write(data) // fails once the server closes: it need not read everything
	out, _ := io.ReadAll(client)
	client.Close()
	serveErr := <-done

	obs.mu.Lock()
	reasons := slices.Clone(obs.reasons)
	obs.mu.Unlock()
	if slices.Contains(reasons, connserver.ReasonPanic) {
		t.Fatalf("the connection panicked: %v", serveErr)
	}

	// What the server should have made of data.
	rd := bytes.NewReader(data)
	br := bufio.NewReader(rd)
	v, length, headErr := readHead(br, fuzzLimit)
	if headErr != nil {
		if got.ran {
			t.Fatalf("handler ran for a head that does not decode: %v", headErr)
		}
		if len(out) != 0 {
			t.Fatalf("answered %q to a head that does not decode (%v)", out, headErr)
		}
		return
	}
	want, reqErr := vars.Request(context.Background(), v, nil)
	if reqErr != nil {
		if got.ran {
			t.Fatalf("handler ran for variables that make no request: %v", reqErr)
		}
		if !bytes.HasPrefix(out, []byte("Status: 400 ")) {
			t.Fatalf("invalid request answered %q, want a 400", out)
		}
		return
	}
	if !got.ran {
		t.Fatalf("handler did not run for a valid request (ServeConn: %v)", serveErr)
	}
	if got.method != want.Method || got.requestURI != want.RequestURI {
		t.Fatalf("handler saw %s %q, want %s %q", got.method, got.requestURI, want.Method, want.RequestURI)
	}
	rest := data[len(data)-rd.Len()-br.Buffered():]
	if int64(len(rest)) >= length {
		if got.readErr != nil || !bytes.Equal(got.body, rest[:length]) {
			t.Fatalf("body %q (%v), want the %d bytes %q", got.body, got.readErr, length, rest[:length])
		}
		if !bytes.HasPrefix(out, []byte("Status: 200 OK\r\n")) {
			t.Fatalf("response %q does not start with the Status line", out)
		}
		return
	}
	// A short body: all of it is delivered, then the read fails.
	if !bytes.Equal(got.body, rest) {
		t.Fatalf("short body read as %q, want the %d bytes sent", got.body, len(rest))
	}
	switch {
	case hangUp && !errors.Is(got.readErr, ErrShortBody):
		t.Fatalf("body cut by a close: read error %v, want ErrShortBody", got.readErr)
	case !hangUp && !isTimeout(got.readErr):
		t.Fatalf("stalled body: read error %v, want a timeout", got.readErr)
	}
	if !errors.Is(serveErr, ErrShortBody) && !isTimeout(serveErr) {
		t.Fatalf("connection with a short body ended with %v, want why", serveErr)
	}
}

// halfClosed is the server's end of a net.Pipe whose peer sent left bytes
// and then closed its sending half, as a TCP FIN does: reads past those
// bytes return io.EOF while writes still reach the peer. (Closing a
// net.Pipe end fails the other end's writes and deadlines too, which no
// socket does.)
type halfClosed struct {
	net.Conn
	mu   sync.Mutex
	left int
}

func (c *halfClosed) Read(p []byte) (int, error) {
	c.mu.Lock()
	left := c.left
	c.mu.Unlock()
	if left == 0 {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p[:min(len(p), left)])
	c.mu.Lock()
	c.left -= n
	c.mu.Unlock()
	return n, err
}
