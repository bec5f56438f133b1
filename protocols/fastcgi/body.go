package fastcgi

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
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
	spool      *os.File // overflow, all of it newer than mem
	spoolR     int64
	spoolW     int64
	spoolLimit int64

	eof    bool  // the empty STDIN record arrived
	err    error // set by fail: returned by Read once mem and spool are drained... or at once
	closed bool  // the handler closed the body or the request ended: discard input

	n    int64 // bytes delivered to the reader
	want int64 // CONTENT_LENGTH, -1 when unknown
}

func newBody(want int64) *body {
	b := &body{memLimit: bodyMemLimit, spoolLimit: bodySpoolLimit, want: want}
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
	if b.spoolW > b.spoolR || b.mem.Len()+len(p) > b.memLimit {
		if !mayBlock || b.spoolW > b.spoolR {
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

func (b *body) spoolWrite(p []byte) error {
	if b.spoolW-b.spoolR+int64(len(p)) > b.spoolLimit {
		return fmt.Errorf("%w (%d bytes waiting)", ErrBodyTooLarge, b.spoolW-b.spoolR+int64(b.mem.Len()))
	}
	if b.spool == nil {
		f, err := os.CreateTemp("", "junction-fastcgi-body-")
		if err != nil {
			return fmt.Errorf("fastcgi: spooling request body: %w", err)
		}
		// Unlinked at once: the file lives only as long as the descriptor.
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return fmt.Errorf("fastcgi: spooling request body: %w", err)
		}
		b.spool = f
	}
	if _, err := b.spool.WriteAt(p, b.spoolW); err != nil {
		return fmt.Errorf("fastcgi: spooling request body: %w", err)
	}
	b.spoolW += int64(len(p))
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

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.want >= 0 && int64(len(p)) > b.want-b.n {
		p = p[:b.want-b.n] // the body is CONTENT_LENGTH bytes, whatever STDIN carries
	}
	for {
		switch {
		case b.closed:
			return 0, fmt.Errorf("fastcgi: read on closed request body: %w", os.ErrClosed)
		case b.err != nil:
			return 0, b.err
		case b.want >= 0 && b.n == b.want && (b.mem.Len() > 0 || b.spoolW > b.spoolR):
			return 0, fmt.Errorf("fastcgi: request body longer than its CONTENT_LENGTH of %d bytes", b.want)
		case b.mem.Len() > 0:
			n, _ := b.mem.Read(p)
			b.n += int64(n)
			b.cond.Broadcast()
			return n, nil
		case b.spoolW > b.spoolR:
			n, err := b.spool.ReadAt(p[:min(int64(len(p)), b.spoolW-b.spoolR)], b.spoolR)
			b.spoolR += int64(n)
			b.n += int64(n)
			if b.spoolR == b.spoolW {
				// Drained: reuse the file from the start.
				b.spoolR, b.spoolW = 0, 0
				if terr := b.spool.Truncate(0); terr != nil && err == nil {
					err = terr
				}
			}
			if err != nil && err != io.EOF {
				b.err = fmt.Errorf("fastcgi: reading spooled request body: %w", err)
			}
			if n > 0 {
				return n, nil
			}
		case b.eof:
			if b.want >= 0 && b.n < b.want {
				return 0, fmt.Errorf("fastcgi: request body ended after %d of %d bytes: %w", b.n, b.want, io.ErrUnexpectedEOF)
			}
			return 0, io.EOF
		default:
			b.cond.Wait()
		}
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
	b.mem = bytes.Buffer{}
	b.cond.Broadcast()
	if b.spool != nil {
		err := b.spool.Close()
		b.spool = nil
		b.spoolR, b.spoolW = 0, 0
		if err != nil {
			return fmt.Errorf("fastcgi: closing request body spool: %w", err)
		}
	}
	return nil
}
