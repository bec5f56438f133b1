package fastcgi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/junction-gw/junction/internal/fcgiwire"
)

// ErrClientBody is wrapped by every error that comes from reading the
// client's request body: the body ended before Content-Length, or a read
// of it failed. Such a failure is the client's, not the instance's: Serve
// returns it as a *backends.ClientError (400), and errors.Is(err, ErrClientBody)
// tells it from a failure of the instance.
var ErrClientBody = errors.New("fastcgi: reading the client's request body")

// errShortBody: the body ended before Content-Length.
var errShortBody = fmt.Errorf("%w: body ended before Content-Length", ErrClientBody)

// errStopped: the exchange ended, and with it the writer, before the
// whole body was sent (the response was over, or had failed).
var errStopped = errors.New("fastcgi: exchange over before the request body was sent")

// maxStdinChunk is the content of a full STDIN record: the most that
// fits (MaxContentLen) rounded down to a multiple of 8, so that full
// records need no padding.
const maxStdinChunk = maxContent &^ 7

// stdin streams a request body to the instance as STDIN records, on a
// goroutine the exchange owns, while the exchange reads the response.
// It sends exactly ContentLength bytes and then the empty STDIN record;
// a body that ends short or fails closes the connection instead, so the
// instance never takes a truncated body for a whole one.
type stdin struct {
	conn    net.Conn
	body    io.Reader
	left    int64
	timeout time.Duration
	addr    string

	// started is set before the first read of the body: from then on the
	// request cannot be sent anywhere else.
	started atomic.Bool
	// ending is set once the write of the last record (which ends STDIN)
	// has its deadline, every earlier write having succeeded.
	ending atomic.Bool
	// stopped is set by the exchange when it no longer needs the body;
	// failures after it are errStopped.
	stopped atomic.Bool
	done    chan struct{}
	// err is why the body was not sent whole, nil when it was; read it
	// only after done is closed. errors.Is(err, ErrClientBody) for the
	// client's failures, errStopped after stop; else the instance's.
	err error
}

// startStdin starts the body writer for r on conn, whose head was sent.
func (b *Backend) startStdin(conn net.Conn, r *http.Request) *stdin {
	var body io.Reader = http.NoBody // a nil Body with a length is a short body, not a panic
	if r.Body != nil {
		body = r.Body
	}
	in := &stdin{conn: conn, body: body, left: r.ContentLength, timeout: b.timeout, addr: b.addr, done: make(chan struct{})}
	go in.run()
	return in
}

func (in *stdin) run() {
	defer close(in.done)
	in.err = in.copy()
}

// stop tells the writer that the exchange is over; the caller then
// closes the connection and, if need be, interrupts the body read.
func (in *stdin) stop() { in.stopped.Store(true) }

// copy reads the body into STDIN records, one read per record, and
// writes each as it comes; the last one goes out with the end of STDIN.
func (in *stdin) copy() error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp // headerLen+maxStdinChunk+7+headerLen fit
	if in.stopped.Load() {
		// The response came before the writer ran (an instance refusing
		// the request at once): the body stays unread for a retry.
		return errStopped
	}
	in.started.Store(true)
	for in.left > 0 {
		n, err := in.body.Read(buf[headerLen : headerLen+int(min(in.left, maxStdinChunk))])
		in.left -= int64(n)
		if in.left > 0 && err != nil {
			return in.fail(err)
		}
		if n == 0 {
			continue
		}
		pad := fcgiwire.PadFor(n)
		fcgiwire.Header{Version: fcgiwire.Version1, Type: fcgiwire.TypeStdin, ID: requestID, ContentLength: uint16(n), PaddingLength: pad}.Put(buf)
		rec := buf[:headerLen+n+int(pad)]
		clear(rec[headerLen+n:])
		last := in.left == 0
		if last {
			rec = fcgiwire.AppendRecord(rec, fcgiwire.TypeStdin, requestID, nil, 0) // within buf
		}
		if err := in.write(rec, last); err != nil {
			return err
		}
	}
	return nil
}

// fail handles a body that ended short or whose read failed: the
// connection closes before STDIN could end, which also wakes the
// response reader.
func (in *stdin) fail(err error) error {
	if in.stopped.Load() {
		// The exchange interrupted the read: not the client's failure.
		return fmt.Errorf("%w: %w", errStopped, err)
	}
	_ = in.conn.Close() // wakes the exchange's reader, which then finds err
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", errShortBody, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%w: %w", ErrClientBody, err)
}

// write writes p with a fresh deadline; last marks the end of STDIN.
func (in *stdin) write(p []byte, last bool) error {
	if err := in.conn.SetWriteDeadline(time.Now().Add(in.timeout)); err != nil {
		return fmt.Errorf("fastcgi: %s: sending the request body: %w", in.addr, err)
	}
	if last {
		// After the deadline: reusable's deadline in the past is not
		// undone.
		in.ending.Store(true)
	}
	if _, err := in.conn.Write(p); err != nil {
		if in.stopped.Load() {
			return fmt.Errorf("%w: %w", errStopped, err) // the exchange closed the connection
		}
		return fmt.Errorf("fastcgi: %s: sending the request body: %w", in.addr, err)
	}
	return nil
}
