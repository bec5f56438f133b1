package connserver

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/junction-gw/junction/internal/rawconn"
)

// The timeouts of every codec, one rule for all (SCGI, FastCGI, AJP13):
//
//   - the idle timeout bounds the wait for a request's first byte (on a
//     new connection, or for the next request on a kept one);
//   - the read timeout bounds the whole request head from its first byte
//     (BeginHead, HeadDeadline): one deadline, never extended by progress,
//     so a peer trickling a byte at a time is cut off when a silent one
//     would be, and cannot hold a connection (of max_conns) for ever;
//   - the read timeout also bounds each read of the request body: a body
//     may be slow, as long as it moves;
//   - the write timeout bounds each write of the response (WriteTimeout
//     maps the setting: 0 is DefaultWriteTimeout, negative is off).
//
// A handler may replace the per-operation deadlines of its request with
// its own through http.ResponseController (Deadline).

// DefaultWriteTimeout is the per-write timeout of a codec whose
// WriteTimeout is zero: nginx's send_timeout and Apache's Timeout.
const DefaultWriteTimeout = 60 * time.Second

// WriteTimeout maps a codec's WriteTimeout setting to its per-write
// timeout: 0 is DefaultWriteTimeout, a negative value (the config's -1)
// turns it off and is returned as 0, meaning none.
func WriteTimeout(setting time.Duration) time.Duration {
	switch {
	case setting == 0:
		return DefaultWriteTimeout
	case setting < 0:
		return 0
	}
	return setting
}

// HeadDeadline returns when a request head whose first byte arrived at
// first must be complete.
func HeadDeadline(first time.Time, readTimeout time.Duration) time.Time {
	return first.Add(readTimeout)
}

// BeginHead is called when the first byte of a request arrived on c: the
// connection is busy (SetIdle(false)) and the rest of the head must
// arrive within readTimeout from now, under one read deadline that the
// codec does not move until the head is read.
func (c *Conn) BeginHead(readTimeout time.Duration) error {
	c.SetIdle(false)
	return c.SetReadDeadline(HeadDeadline(time.Now(), readTimeout))
}

// Deadline is one direction, reads or writes, of the deadlines of a
// connection that carries one request at a time (SCGI, AJP13). The codec
// arms it before each operation with its per-operation timeout; a handler
// may set a deadline of its own instead (http.ResponseController's
// SetReadDeadline and SetWriteDeadline), which takes effect at once, on an
// operation in progress too (a write blocked on a peer that reads nothing
// fails when it passes), and holds for every later operation until the
// handler clears it or the codec releases it for the next request.
type Deadline struct {
	conn  net.Conn
	write bool

	mu      sync.Mutex
	own     time.Time // the handler's deadline, when isOwn
	isOwn   bool
	timeout time.Duration // the per-operation timeout last armed
}

func (d *Deadline) apply(t time.Time) error {
	if d.write {
		return d.conn.SetWriteDeadline(t)
	}
	return d.conn.SetReadDeadline(t)
}

func (d *Deadline) nextLocked() time.Time {
	switch {
	case d.isOwn:
		return d.own
	case d.timeout > 0:
		return time.Now().Add(d.timeout)
	}
	return time.Time{}
}

// Arm sets the deadline of the next operation: the handler's when it set
// one, else now plus timeout, else (timeout ≤ 0) none.
func (d *Deadline) Arm(timeout time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.timeout = timeout
	return d.apply(d.nextLocked())
}

// Set is the handler's deadline: t replaces the per-operation timeout now
// and until Release. A zero t gives the per-operation timeout back,
// counted from now for an operation in progress.
func (d *Deadline) Set(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.own, d.isOwn = t, !t.IsZero()
	return d.apply(d.nextLocked())
}

// Passed reports whether a deadline the handler set has passed: an
// operation would fail at once.
func (d *Deadline) Passed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.isOwn && !time.Now().Before(d.own)
}

// Release drops the handler's deadline at the end of its request. The
// connection's deadline is left as it is: the next operation arms its
// own.
func (d *Deadline) Release() {
	d.mu.Lock()
	d.own, d.isOwn = time.Time{}, false
	d.mu.Unlock()
}

// Reads returns the read side of c's deadlines.
func (c *Conn) Reads() *Deadline { return &c.reads }

// Writes returns the write side of c's deadlines.
func (c *Conn) Writes() *Deadline { return &c.writes }

// Bounds of Linger.
const (
	// LingerTimeout is the longest Linger waits for the peer.
	LingerTimeout = 500 * time.Millisecond
	// LingerBytes is the most Linger reads and discards.
	LingerBytes = 256 << 10
)

// Linger ends a connection whose peer may still be sending input nobody
// will read (a request body the handler left), as net/http does. Closing
// a socket with unread input makes the kernel reset the connection: a peer
// still sending (Apache sends the whole body before it reads the response)
// fails its write and loses the response that had arrived. Linger
// half-closes c, so the peer sees the response end, then reads and
// discards from r (the codec's reader of c, so that what it buffered
// counts too) until the peer closes, LingerBytes were read, or
// LingerTimeout passed; a read of r in progress elsewhere ends by then
// too. The caller has flushed the response; the server closes c as usual
// once the handler returns.
func (c *Conn) Linger(r io.Reader) {
	// Errors here only end the lingering sooner: the connection closes
	// next either way.
	_ = c.reads.Set(time.Now().Add(LingerTimeout))
	_ = c.CloseWrite()
	_, _ = io.Copy(io.Discard, io.LimitReader(r, LingerBytes))
}

// CloseWrite shuts down the writing side of c, where its socket can (TCP
// and unix sockets); elsewhere it does nothing.
func (c *Conn) CloseWrite() error {
	nc := c.Conn
	if rc, ok := nc.(*rawconn.Conn); ok {
		nc = rc.Conn
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Detached returns nc as a Conn that no Server serves, for tests that
// drive a codec's connection code directly: its deadlines work, and it
// reports a server that is running.
func Detached(nc net.Conn) *Conn { return newConn(nc, &Server{}, func() {}) }
