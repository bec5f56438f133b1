package fastcgi

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/junction-gw/junction/internal/spool"
)

// Body buffering limits; see the package doc for the design.
const (
	// bodyMemLimit is the in-memory STDIN buffer per request: enough for
	// several full records, small enough that 1000 requests in flight
	// stay within a few hundred MiB.
	bodyMemLimit = 256 << 10
	// bodySpoolLimit bounds the temporary file of one request that a
	// multiplexing peer keeps feeding while its handler does not read.
	bodySpoolLimit = 64 << 20
)

// body is a request's STDIN stream: written by the connection's reader
// goroutine, read by the handler as r.Body.
type body struct {
	mu   sync.Mutex
	cond sync.Cond

	mem        bytes.Buffer
	memLimit   int
	spool      spool.File // overflow, all of it newer than mem; charged to the server's SpoolBudget
	spoolR     int64      // read offset in spool
	spoolLimit int64

	eof    bool  // the empty STDIN record arrived
	err    error // set by fail: returned by Read once mem and spool are drained... or at once
	closed bool  // the handler closed the body or the request ended: discard input

	n    int64 // bytes delivered to the reader
	want int64 // CONTENT_LENGTH, -1 when unknown

	deadline time.Time   // the handler's read deadline (zero: none)
	timer    *time.Timer // wakes readers when deadline passes
}

// errReadDeadline is what reads get once the handler's read deadline has
// passed.
var errReadDeadline = fmt.Errorf("fastcgi: reading the request body: %w", os.ErrDeadlineExceeded)

func newBody(want int64, budget *spool.Budget) *body {
	b := &body{memLimit: bodyMemLimit, spoolLimit: bodySpoolLimit, want: want}
	b.spool = spool.File{Budget: budget, Pattern: "junction-fastcgi-body-"}
	b.cond.L = &b.mu
	return b
}

// write queues p (copied). When the memory buffer is full it waits for
// the reader if mayBlock, else spools to a temporary file. It returns an
// error only when the spool fails or overflows; the caller then fails the
// request, not the connection.
func (b *body) write(p []byte, mayBlock bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.err != nil {
		return nil
	}
	if b.spool.Len() > b.spoolR || b.mem.Len()+len(p) > b.memLimit {
		if !mayBlock || b.spool.Len() > b.spoolR {
			return b.spoolWrite(p)
		}
		for b.mem.Len()+len(p) > b.memLimit && !b.closed && b.err == nil {
			b.cond.Wait()
		}
		if b.closed || b.err != nil {
			return nil
		}
	}
	b.mem.Write(p)
	b.cond.Broadcast()
	return nil
}

// spoolWrite appends p to the spool. Beyond bodySpoolLimit waiting bytes
// it fails with ErrBodyTooLarge; beyond the server's SpoolBudget (the
// file's bytes, read or not, until it is drained) with spool.ErrFull.
func (b *body) spoolWrite(p []byte) error {
	if waiting := b.spool.Len() - b.spoolR + int64(len(p)); waiting > b.spoolLimit {
		return fmt.Errorf("%w (%d bytes waiting)", ErrBodyTooLarge, waiting-int64(len(p))+int64(b.mem.Len()))
	}
	if err := b.spool.Append(p); err != nil {
		return fmt.Errorf("fastcgi: spooling request body: %w", err)
	}
	b.cond.Broadcast()
	return nil
}

// end marks the end of the STDIN stream.
func (b *body) end() {
	b.mu.Lock()
	b.eof = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

// fail makes Read return err and releases a blocked writer.
func (b *body) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.cond.Broadcast()
	b.mu.Unlock()
}

// Read delivers the body: CONTENT_LENGTH bytes, whatever STDIN carries.
// A STDIN that ends short fails the read with io.ErrUnexpectedEOF, one
// that carries more fails it too; and so that a reader taking exactly
// CONTENT_LENGTH bytes (the CGI backend feeding a script) sees the
// failure as well, the last declared byte is delivered only once the
// empty STDIN record shows that the body is exactly that long. A body
// never reads as complete when it is not.
func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	for {
		waiting := int64(b.mem.Len()) + b.spool.Len() - b.spoolR
		limit := int64(len(p))
		over := false
		if b.want >= 0 {
			over = b.n+waiting > b.want
			left := b.want - b.n
			if over || !b.eof {
				left-- // the last byte waits for the end of STDIN
			}
			limit = min(limit, max(left, 0))
		}
		switch {
		case b.closed:
			return 0, fmt.Errorf("fastcgi: read on closed request body: %w", os.ErrClosed)
		case b.err != nil:
			return 0, b.err
		case !b.deadline.IsZero() && !time.Now().Before(b.deadline):
			return 0, errReadDeadline
		case limit == 0 && over:
			return 0, fmt.Errorf("fastcgi: request body longer than its CONTENT_LENGTH of %d bytes", b.want)
		case limit > 0 && b.mem.Len() > 0:
			n, _ := b.mem.Read(p[:min(limit, int64(b.mem.Len()))])
			b.n += int64(n)
			b.cond.Broadcast()
			return n, nil
		case limit > 0 && b.spool.Len() > b.spoolR:
			n, err := b.spool.ReadAt(p[:min(limit, b.spool.Len()-b.spoolR)], b.spoolR)
			b.spoolR += int64(n)
			b.n += int64(n)
			if b.spoolR == b.spool.Len() {
				// Drained: reuse the file from the start, and give its
				// bytes back to the budget.
				b.spoolR = 0
				if terr := b.spool.Reset(); terr != nil && err == nil {
					err = terr
				}
			}
			if err != nil && err != io.EOF {
				b.err = fmt.Errorf("fastcgi: reading spooled request body: %w", err)
			}
			if n > 0 {
				return n, nil
			}
		case b.eof && waiting == 0:
			if b.want >= 0 && b.n < b.want {
				return 0, fmt.Errorf("fastcgi: request body ended after %d of %d bytes: %w", b.n, b.want, io.ErrUnexpectedEOF)
			}
			return 0, io.EOF
		default:
			b.cond.Wait()
		}
	}
}

// setDeadline sets the handler's read deadline (zero: none): reads fail
// once it has passed, and a read waiting for STDIN is woken then.
func (b *body) setDeadline(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deadline = t
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	switch {
	case t.IsZero() || b.closed:
	case time.Until(t) > 0:
		b.timer = time.AfterFunc(time.Until(t), func() {
			b.mu.Lock()
			b.cond.Broadcast()
			b.mu.Unlock()
		})
	default:
		b.cond.Broadcast()
	}
}

// isClosed reports whether Close was called.
func (b *body) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close discards what is buffered and any later input.
func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.mem = bytes.Buffer{}
	b.cond.Broadcast()
	b.spoolR = 0
	if err := b.spool.Close(); err != nil {
		return fmt.Errorf("fastcgi: closing request body spool: %w", err)
	}
	return nil
}
