package fastcgi

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/junction-gw/junction/backends/internal/cgienv"
	"github.com/junction-gw/junction/internal/fcgiwire"
)

// headPool holds the buffers request heads are encoded in.
var headPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooledHead bounds the buffers headPool keeps: one grown by a rare
// huge head (long cookies, big custom parameters) is left to the garbage
// collector rather than held by the pool.
const maxPooledHead = 64 << 10

// send writes the request on conn. A request without a body is written
// whole before send returns, and the returned writer is nil. For a
// request with a body, send writes the head and starts the writer that
// streams the body; the caller reads the response meanwhile and must
// end the writer (finish, or reusable reporting true) before it returns.
// An error means the head was not written, and no writer runs.
func (b *Backend) send(r *http.Request, conn net.Conn, s cgienv.Script) (*stdin, error) {
	hasBody := r.ContentLength > 0
	if err := b.sendHead(r, conn, s, hasBody); err != nil {
		return nil, err
	}
	if !hasBody {
		return nil, nil
	}
	return b.startStdin(conn, r), nil
}

// sendHead sends BEGIN_REQUEST, PARAMS and the empty PARAMS record that
// ends them in one write; without a body, the empty STDIN record that
// ends the request goes out in the same write.
func (b *Backend) sendHead(r *http.Request, conn net.Conn, s cgienv.Script, hasBody bool) error {
	bp := headPool.Get().(*[]byte)
	out := b.appendHead((*bp)[:0], r, s, hasBody)
	err := conn.SetWriteDeadline(time.Now().Add(b.timeout))
	if err == nil {
		_, err = conn.Write(out)
	}
	if cap(out) <= maxPooledHead {
		*bp = out[:0]
		headPool.Put(bp)
	}
	if err != nil {
		return fmt.Errorf("fastcgi: %s: sending the request: %w", b.addr, err)
	}
	return nil
}

// appendHead appends the records that open the request: BEGIN_REQUEST
// (with FCGI_KEEP_CONN under keep-alive), the parameters as cgienv built
// them, in its order, and the empty PARAMS record; without a body, also
// the empty STDIN record.
func (b *Backend) appendHead(dst []byte, r *http.Request, s cgienv.Script, hasBody bool) []byte {
	var flags uint8
	if b.idle != nil {
		flags = fcgiwire.FlagKeepConn
	}
	dst = fcgiwire.AppendBeginRequest(dst, requestID, fcgiwire.RoleResponder, flags)
	start := len(dst)
	for _, kv := range b.env.Vars(r, s) {
		dst = fcgiwire.AppendPair(dst, kv.Name, kv.Value)
	}
	dst = fcgiwire.FrameStream(dst, start, fcgiwire.TypeParams, requestID)
	dst = fcgiwire.AppendRecord(dst, fcgiwire.TypeParams, requestID, nil, 0)
	if !hasBody {
		dst = fcgiwire.AppendRecord(dst, fcgiwire.TypeStdin, requestID, nil, 0)
	}
	return dst
}
