package ajp13

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/junction-gw/junction/protocols/internal/connserver"
)

// TestWriteAfterFinish: once the handler returned, its response no longer
// writes into the body buffer, which the connection's next request uses.
func TestWriteAfterFinish(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &conn{srv: &Server{}, nc: connserver.Detached(b), in: make([]byte, 8192), out: make([]byte, 0, 8192)}
	c.bw = bufio.NewWriter(io.Discard)
	w := newResponse(c, nil, func() {})
	if _, err := w.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	w.finish()
	next := newResponse(c, nil, func() {})
	if n, err := w.Write([]byte("late")); n != 0 || !errors.Is(err, errFinished) {
		t.Errorf("Write after finish = %d, %v; want 0, errFinished", n, err)
	}
	w.Flush() // must not touch the shared buffer either
	if b := next.buf.Buffered(); b != 0 {
		t.Errorf("next response's buffer holds %d bytes from the finished one", b)
	}
}
