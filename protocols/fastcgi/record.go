package fastcgi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/junction-gw/junction/internal/fcgiwire"
)

// Local names for the shared wire format (protocols/fastcgi/wire), which
// backends/fastcgi uses too.
type (
	recType = fcgiwire.Type
	header  = fcgiwire.Header
)

const (
	typeBeginRequest    = fcgiwire.TypeBeginRequest
	typeAbortRequest    = fcgiwire.TypeAbortRequest
	typeEndRequest      = fcgiwire.TypeEndRequest
	typeParams          = fcgiwire.TypeParams
	typeStdin           = fcgiwire.TypeStdin
	typeStdout          = fcgiwire.TypeStdout
	typeStderr          = fcgiwire.TypeStderr
	typeData            = fcgiwire.TypeData
	typeGetValues       = fcgiwire.TypeGetValues
	typeGetValuesResult = fcgiwire.TypeGetValuesResult
	typeUnknownType     = fcgiwire.TypeUnknownType

	roleResponder  = fcgiwire.RoleResponder
	roleAuthorizer = fcgiwire.RoleAuthorizer
	roleFilter     = fcgiwire.RoleFilter
	flagKeepConn   = fcgiwire.FlagKeepConn

	statusRequestComplete = fcgiwire.StatusRequestComplete
	statusCantMpxConn     = fcgiwire.StatusCantMpxConn
	statusOverloaded      = fcgiwire.StatusOverloaded
	statusUnknownRole     = fcgiwire.StatusUnknownRole

	version1      = fcgiwire.Version1
	headerLen     = fcgiwire.HeaderLen
	maxContentLen = fcgiwire.MaxContentLen
	maxPaddingLen = fcgiwire.MaxPaddingLen
)

// Errors that close a connection. They are wrapped with detail.
var (
	ErrProtocol     = errors.New("fastcgi: protocol error")
	ErrBodyTooLarge = errors.New("fastcgi: request body spool limit exceeded")

	// Finer kinds of ErrProtocol, for Reason.
	errBadVersion       = fmt.Errorf("%w: unsupported version", ErrProtocol)
	errBadParams        = fmt.Errorf("%w: malformed name-value pairs", ErrProtocol)
	errUnexpectedRecord = fmt.Errorf("%w: unexpected record", ErrProtocol)
)

// record is one decoded record. content aliases the reader's buffer and is
// valid until the next call to next.
type record struct {
	header
	content []byte
}

// recordReader decodes records from a stream into one buffer reused for
// the life of the connection. It never allocates more than
// maxContentLen+maxPaddingLen bytes, whatever the peer claims. A read that
// fails part-way (a deadline used to wake the connection's reader) keeps
// its progress: the next call resumes the same record.
type recordReader struct {
	r     io.Reader
	hdr   [headerLen]byte
	hn    int    // header bytes of the current record read so far
	h     header // valid once hn == headerLen
	buf   []byte
	bn    int       // content+padding bytes read so far
	began time.Time // when the first bytes of the current (or last) record arrived
	// begun, if set, is told when a record's first bytes arrived but
	// not its whole header, before next waits for the rest.
	begun recordBeginner
}

// recordBeginner learns that a record began arriving in pieces. It is an
// interface, not a func, so that a connection can be one without a
// closure allocated per connection.
type recordBeginner interface{ recordBegun() }

func newRecordReader(r io.Reader) *recordReader {
	return &recordReader{r: r}
}

// inRecord reports whether part of a record has been read.
func (rr *recordReader) inRecord() bool { return rr.hn > 0 }

// next reads one record. n is the number of bytes this call consumed, so
// the caller can tell progress from silence when a deadline fires.
func (rr *recordReader) next() (rec record, n int, err error) {
	if rr.hn < headerLen {
		// Read by read, not io.ReadAtLeast: the time of the record's
		// first byte bounds a request head (conn.deadline).
		for rr.hn < headerLen {
			first := rr.hn == 0
			m, err := rr.r.Read(rr.hdr[rr.hn:])
			if first && m > 0 {
				rr.began = time.Now()
			}
			rr.hn += m
			n += m
			if err != nil {
				return rec, n, rr.readErr("header", err)
			}
			if first && m > 0 && rr.hn < headerLen && rr.begun != nil {
				// A record began in pieces: let the caller bound it
				// before waiting for the rest.
				rr.begun.recordBegun()
			}
		}
		rr.h = fcgiwire.ParseHeader(rr.hdr[:])
		rr.bn = 0
		if rr.h.Version != version1 {
			return rec, n, fmt.Errorf("%w %d, want 1", errBadVersion, rr.h.Version)
		}
		if total := int(rr.h.ContentLength) + int(rr.h.PaddingLength); cap(rr.buf) < total {
			// Grow in steps so a stream of small records never reallocates.
			rr.buf = make([]byte, max(total, 2*cap(rr.buf), 512))
		}
	}
	total := int(rr.h.ContentLength) + int(rr.h.PaddingLength)
	body := rr.buf[:total]
	if rr.bn < total {
		m, err := io.ReadAtLeast(rr.r, body[rr.bn:], total-rr.bn)
		rr.bn += m
		n += m
		if err != nil {
			return rec, n, rr.readErr(rr.h.Type.String()+" content", err)
		}
	}
	rr.hn, rr.bn = 0, 0
	return record{header: rr.h, content: body[:rr.h.ContentLength]}, n, nil
}

func (rr *recordReader) readErr(what string, err error) error {
	if !rr.inRecord() && (err == io.EOF || isTimeout(err)) {
		// Silence or a close between records: the usual end of a
		// connection and the reader's wake-up, which the caller handles
		// without the error's text.
		return err
	}
	if errors.Is(err, io.EOF) && rr.inRecord() {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("fastcgi: reading record %s: %w", what, err)
}

func padFor(n int) uint8 { return fcgiwire.PadFor(n) }

func appendRecord(dst []byte, t recType, id uint16, content []byte, pad uint8) []byte {
	return fcgiwire.AppendRecord(dst, t, id, content, pad)
}

// recordWriter serialises records from all requests on a connection. Each
// record goes out in one Write, under a write deadline: WriteTimeout's, or
// the request's own (http.ResponseController.SetWriteDeadline) when that
// request is alone on the connection. A failed write ends the connection
// (closeOnFail): the record stream is broken.
type recordWriter struct {
	mu      sync.Mutex
	c       net.Conn
	timeout time.Duration // per record; 0: none
	buf     []byte
	err     error // sticky: once a write failed, the connection is done
	// closeOnFail closes c at the first failure: the record stream is
	// broken, so the connection ends.
	closeOnFail bool

	// dlMu orders setting the connection's write deadline: each record's,
	// and a request's own deadline, which takes effect at once. It guards
	// the requests' wd fields. Never held across a write.
	dlMu sync.Mutex
}

// writeDeadline is a request's own write deadline.
type writeDeadline struct {
	t   time.Time
	set bool
}

// errWriteDeadline is what the writes of a request get once its own
// write deadline has passed while it shares the connection.
var errWriteDeadline = fmt.Errorf("fastcgi: writing the response: %w", os.ErrDeadlineExceeded)

// failed returns the connection's write failure, if any.
func (w *recordWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// failLocked records the connection's first write failure; the caller
// holds w.mu.
func (w *recordWriter) failLocked(err error) error {
	if w.err == nil {
		w.err = err
		if w.closeOnFail {
			w.c.Close()
		}
	}
	return w.err
}

// arm sets the write deadline of the next record of request r (nil: a
// record of the connection's own). When r is alone on the connection the
// socket is its to abort, and its own deadline, when set, replaces
// WriteTimeout. When it shares the connection, its deadline never cuts a
// record (that would end the other requests too): its records fail
// before they start once it has passed (errWriteDeadline, the connection
// unharmed). The caller holds w.mu.
func (w *recordWriter) arm(r *request, alone bool) error {
	w.dlMu.Lock()
	defer w.dlMu.Unlock()
	var dl time.Time
	if w.timeout > 0 {
		dl = time.Now().Add(w.timeout)
	}
	if r != nil && r.wd.set {
		switch {
		case alone:
			dl = r.wd.t
		case !time.Now().Before(r.wd.t):
			return errWriteDeadline
		}
	}
	if err := w.c.SetWriteDeadline(dl); err != nil {
		return w.failLocked(fmt.Errorf("fastcgi: setting write deadline: %w", err))
	}
	return nil
}

// setDeadline sets request r's own write deadline (zero: none). When r is
// alone on the connection it takes effect at once, also on a write in
// progress.
func (w *recordWriter) setDeadline(r *request, t time.Time) error {
	w.dlMu.Lock()
	defer w.dlMu.Unlock()
	r.wd = writeDeadline{t: t, set: !t.IsZero()}
	if !r.cn.alone(r) {
		return nil
	}
	if t.IsZero() && w.timeout > 0 {
		t = time.Now().Add(w.timeout)
	}
	return w.c.SetWriteDeadline(t)
}

// deadlinePassed reports whether request r's own write deadline has
// passed.
func (w *recordWriter) deadlinePassed(r *request) bool {
	w.dlMu.Lock()
	defer w.dlMu.Unlock()
	return r.wd.set && !time.Now().Before(r.wd.t)
}

// write writes content as records of type t for request id, on the
// connection's own account (management records, refusals).
func (w *recordWriter) write(t recType, id uint16, content []byte) error {
	return w.writeFor(nil, t, id, content)
}

// writeFor writes content as records of type t for request id, of
// request r when not nil (whose write deadline then applies).
func (w *recordWriter) writeFor(r *request, t recType, id uint16, content []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.grab()
	for {
		chunk := content[:min(len(content), maxContentLen)]
		w.buf = appendRecord(w.buf[:0], t, id, chunk, padFor(len(chunk)))
		if err := w.arm(r, r != nil && r.cn.alone(r)); err != nil {
			return err
		}
		if _, err := w.c.Write(w.buf); err != nil {
			return w.failLocked(fmt.Errorf("fastcgi: writing %v record: %w", t, err))
		}
		content = content[len(chunk):]
		if len(content) == 0 {
			return nil
		}
	}
}

// writeBufPool holds record writers' buffers between connections.
var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledWriteBuf is the largest buffer kept for reuse: enough for a
// response tail of a full stdout buffer and its records.
const maxPooledWriteBuf = 64 << 10

// grab gives the writer a buffer from the pool when it has none. Callers
// hold w.mu.
func (w *recordWriter) grab() {
	if w.buf == nil {
		w.buf = (*writeBufPool.Get().(*[]byte))[:0]
	}
}

// release returns the writer's buffer to the pool once nothing writes any
// more.
func (w *recordWriter) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf != nil && cap(w.buf) <= maxPooledWriteBuf {
		b := w.buf[:0]
		writeBufPool.Put(&b)
	}
	w.buf = nil
}

// endRequest writes END_REQUEST for id. A non-nil tail goes first, in the
// same write: the last STDOUT bytes and the empty record ending the stream.
func (w *recordWriter) endRequest(id uint16, tail *stdoutTail, appStatus uint32, protocolStatus uint8) error {
	return w.endRequestFor(nil, false, id, tail, appStatus, protocolStatus)
}

// endRequestFor is endRequest for request r, alone on the connection or
// not: alone, its own write deadline bounds the write (a passed one fails
// it, and the connection ends without END_REQUEST: the web server sees
// the response cut); sharing the connection, END_REQUEST goes out under
// WriteTimeout.
func (w *recordWriter) endRequestFor(r *request, alone bool, id uint16, tail *stdoutTail, appStatus uint32, protocolStatus uint8) error {
	if !alone {
		r = nil
	}
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], appStatus)
	b[4] = protocolStatus
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.grab()
	w.buf = w.buf[:0]
	if tail != nil {
		for rest := tail.data; len(rest) > 0; {
			chunk := rest[:min(len(rest), maxContentLen)]
			w.buf = appendRecord(w.buf, typeStdout, id, chunk, padFor(len(chunk)))
			rest = rest[len(chunk):]
		}
		w.buf = appendRecord(w.buf, typeStdout, id, nil, 0)
	}
	w.buf = appendRecord(w.buf, typeEndRequest, id, b[:], padFor(len(b)))
	if err := w.arm(r, alone); err != nil {
		return err
	}
	if _, err := w.c.Write(w.buf); err != nil {
		return w.failLocked(fmt.Errorf("fastcgi: writing %v record: %w", typeEndRequest, err))
	}
	return nil
}

// stdoutTail holds a finished response's last STDOUT bytes (they alias
// the response's buffer) for END_REQUEST's write.
type stdoutTail struct {
	hold bool // writes are held here, not sent
	data []byte
}

// stdoutWriter writes a byte stream as STDOUT records of one request. It
// sits behind a bufio.Writer, so records are as large as that buffer.
type stdoutWriter struct {
	w    *recordWriter
	r    *request // nil in tests: no request deadline
	id   uint16
	tail *stdoutTail // nil: every write is sent
}

func (s stdoutWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.tail != nil && s.tail.hold {
		// The buffer's final flush: p stays valid until the buffer is
		// released, after END_REQUEST is written.
		s.tail.data = p
		return len(p), nil
	}
	if err := s.w.writeFor(s.r, typeStdout, s.id, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// bufferedStdout returns the buffered STDOUT stream of a request.
func bufferedStdout(w *recordWriter, id uint16, size int) *bufio.Writer {
	return bufio.NewWriterSize(stdoutWriter{w: w, id: id}, size)
}
