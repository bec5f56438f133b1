package fastcgi

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-gw/junction/internal/fcgiwire"
)

// unixInstance serves each connection on a Unix socket with serve, after
// it read the request head (up to the end of PARAMS); the connection is
// closed after serve.
func unixInstance(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "app.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					rec, err := readWireRecord(br)
					if err != nil {
						return
					}
					if rec.typ == fcgiwire.TypeParams && len(rec.content) == 0 {
						break
					}
				}
				serve(c, br)
			}()
		}
	}()
	return sock
}

// readStdin reads STDIN records to the empty one and returns the content.
func readStdin(br *bufio.Reader) ([]byte, error) {
	var stdin []byte
	for {
		rec, err := readWireRecord(br)
		if err != nil {
			return stdin, err
		}
		if rec.typ == fcgiwire.TypeStdin {
			if len(rec.content) == 0 {
				return stdin, nil
			}
			stdin = append(stdin, rec.content...)
		}
	}
}

// writeStdout writes p as STDOUT records.
func writeStdout(c net.Conn, p []byte) error {
	out := fcgiwire.FrameStream(append([]byte(nil), p...), 0, fcgiwire.TypeStdout, requestID)
	_, err := c.Write(out)
	return err
}

// deadlineWriter is a ResponseWriter whose SetReadDeadline (reached
// through http.ResponseController) interrupts a blocked body read, as a
// front end's does.
type deadlineWriter struct {
	*httptest.ResponseRecorder
	interrupt func()
}

func (w deadlineWriter) SetReadDeadline(time.Time) error { w.interrupt(); return nil }

// blockingBody returns its content, then blocks until interrupted.
type blockingBody struct {
	r        io.Reader
	unblock  chan struct{}
	once     sync.Once
	returned atomic.Bool // the blocked read returned
}

func (b *blockingBody) Read(p []byte) (int, error) {
	if n, err := b.r.Read(p); n > 0 || err == nil {
		return n, nil
	}
	<-b.unblock
	b.returned.Store(true)
	return 0, os.ErrDeadlineExceeded
}

func (b *blockingBody) interrupt() { b.once.Do(func() { close(b.unblock) }) }

// The response is read while the body is sent: an instance that answers
// before it reads STDIN, one that echoes STDIN as it reads it, and one
// that answers and closes without reading it must not deadlock against
// the body writer, and Serve returns only once the writer has ended.
func TestFullDuplex(t *testing.T) {
	const bodyLen = 4 << 20 // more than both socket buffers hold
	body := testBody(bodyLen)
	response := testBody(1 << 20)
	contentType := []byte("Content-Type: application/octet-stream\r\n\r\n")
	tests := []struct {
		name      string
		keep      int
		serve     func(c net.Conn, br *bufio.Reader)
		wantBody  []byte
		wantKept  int
		blockBody bool // the client's body stalls after its first 1000 bytes
	}{
		{
			name: "answers before reading STDIN",
			keep: 1,
			serve: func(c net.Conn, br *bufio.Reader) {
				if writeStdout(c, append(contentType, response...)) != nil {
					return
				}
				stdin, err := readStdin(br)
				if err != nil || len(stdin) != bodyLen {
					return // no END_REQUEST: the test sees the response end early
				}
				c.Write(rec(typeStdout, ""))
				c.Write(endRequest(0))
				io.Copy(io.Discard, br) // until the backend closes the kept connection
			},
			wantBody: response, wantKept: 1,
		},
		{
			name: "echoes STDIN as it reads",
			serve: func(c net.Conn, br *bufio.Reader) {
				if writeStdout(c, contentType) != nil {
					return
				}
				for {
					rec, err := readWireRecord(br)
					if err != nil || rec.typ != fcgiwire.TypeStdin {
						return
					}
					if len(rec.content) == 0 {
						break
					}
					if writeStdout(c, rec.content) != nil {
						return
					}
				}
				c.Write(endRequest(0))
			},
			wantBody: body,
		},
		{
			name: "answers and closes without reading STDIN",
			serve: func(c net.Conn, br *bufio.Reader) {
				writeStdout(c, append(contentType, response...))
				c.Write(endRequest(0))
			},
			wantBody: response,
		},
		{
			name: "answers while the client's body stalls",
			serve: func(c net.Conn, br *bufio.Reader) {
				writeStdout(c, append(contentType, response...))
				c.Write(endRequest(0))
			},
			wantBody: response, blockBody: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := unixInstance(t, tt.serve)
			b, err := New(Options{Addr: "unix:" + sock, Root: "/srv", KeepAlive: tt.keep, Timeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			var w http.ResponseWriter = httptest.NewRecorder()
			var bb *blockingBody
			r := httptest.NewRequest("POST", "/a.php", bytes.NewReader(body))
			if tt.blockBody {
				bb = &blockingBody{r: bytes.NewReader(body[:1000]), unblock: make(chan struct{})}
				r = httptest.NewRequest("POST", "/a.php", bb)
				r.ContentLength = bodyLen
				w = deadlineWriter{w.(*httptest.ResponseRecorder), bb.interrupt}
			}
			done := make(chan error, 1)
			go func() { done <- b.Serve(w, r) }()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Serve deadlocked against the body writer")
			}
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
			rec := recorder(w)
			if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), tt.wantBody) {
				t.Errorf("status %d, body of %d bytes, want 200 and %d bytes", rec.Code, rec.Body.Len(), len(tt.wantBody))
			}
			if n := b.idle.Len(); n != tt.wantKept {
				t.Errorf("%d kept connections, want %d", n, tt.wantKept)
			}
			if bb != nil && !bb.returned.Load() {
				t.Errorf("Serve returned while the body writer was still reading the client's body")
			}
		})
	}
}

func recorder(w http.ResponseWriter) *httptest.ResponseRecorder {
	if dw, ok := w.(deadlineWriter); ok {
		return dw.ResponseRecorder
	}
	return w.(*httptest.ResponseRecorder)
}
