package fastcgi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/junction-gw/junction/internal/fcgiwire"
)

// The record layout is internal/fcgiwire, shared with junction's FastCGI
// front end.
type recType = fcgiwire.Type

const (
	typeEndRequest      = fcgiwire.TypeEndRequest
	typeStdout          = fcgiwire.TypeStdout
	typeStderr          = fcgiwire.TypeStderr
	typeGetValues       = fcgiwire.TypeGetValues
	typeGetValuesResult = fcgiwire.TypeGetValuesResult
	typeUnknownType     = fcgiwire.TypeUnknownType

	statusRequestComplete = fcgiwire.StatusRequestComplete
	statusCantMpxConn     = fcgiwire.StatusCantMpxConn
	statusOverloaded      = fcgiwire.StatusOverloaded
	statusUnknownRole     = fcgiwire.StatusUnknownRole
)

const (
	headerLen  = fcgiwire.HeaderLen
	maxContent = fcgiwire.MaxContentLen
	maxPadding = fcgiwire.MaxPaddingLen
	// requestID is the id of every request: junction sends one request
	// at a time on a connection.
	requestID = 1
)

var (
	errProtocol = errors.New("fastcgi: protocol error")
	// errNoEnd means the connection ended before END_REQUEST.
	errNoEnd   = errors.New("fastcgi: connection closed before END_REQUEST")
	errUnknown = fmt.Errorf("%w: unexpected record", errProtocol)
)

// bufPool holds record buffers (one maximal record each: the response
// reader's, and the body writer's STDIN records) and the readers in front
// of the connection.
var (
	bufPool   = sync.Pool{New: func() any { b := make([]byte, maxContent+maxPadding); return &b }}
	bufrdPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
)

// responseReader reads the records of one response. Read returns the
// STDOUT stream, one record's content at most per call, and io.EOF after
// END_REQUEST; STDERR records go to stderr as they come.
type responseReader struct {
	conn    net.Conn
	br      *bufio.Reader
	buf     *[]byte
	timeout time.Duration
	stderr  func([]byte)

	pending     []byte // unread STDOUT content
	got         bool   // a record was read
	ended       bool
	appStatus   uint32
	protoStatus uint8
	err         error // sticky
}

func newResponseReader(c net.Conn, timeout time.Duration, stderr func([]byte)) *responseReader {
	br := bufrdPool.Get().(*bufio.Reader)
	br.Reset(c)
	return &responseReader{conn: c, br: br, buf: bufPool.Get().(*[]byte), timeout: timeout, stderr: stderr}
}

// release returns the buffers; the reader must not be used afterwards.
func (rr *responseReader) release() {
	rr.br.Reset(nil)
	bufrdPool.Put(rr.br)
	bufPool.Put(rr.buf)
	rr.br, rr.buf, rr.pending = nil, nil, nil
}

func (rr *responseReader) Read(p []byte) (int, error) {
	for len(rr.pending) == 0 {
		if rr.ended {
			return 0, io.EOF
		}
		if rr.err != nil {
			return 0, rr.err
		}
		if rr.err = rr.next(); rr.err != nil {
			return 0, rr.err
		}
	}
	n := copy(p, rr.pending)
	rr.pending = rr.pending[n:]
	return n, nil
}

// next reads one record and files its content.
func (rr *responseReader) next() error {
	typ, id, content, err := readRecord(rr.conn, rr.br, *rr.buf, rr.timeout)
	if err != nil {
		return err
	}
	rr.got = true
	if id == 0 {
		// Management records (a GET_VALUES_RESULT or UNKNOWN_TYPE) are
		// not part of the response.
		return nil
	}
	if id != requestID {
		return fmt.Errorf("%w: record for request %d, want %d", errProtocol, id, requestID)
	}
	switch typ {
	case typeStdout:
		rr.pending = content // empty: end of the stream, END_REQUEST follows
	case typeStderr:
		if len(content) > 0 && rr.stderr != nil {
			rr.stderr(content)
		}
	case typeEndRequest:
		if len(content) < 8 {
			return fmt.Errorf("%w: END_REQUEST of %d bytes", errProtocol, len(content))
		}
		rr.appStatus = binary.BigEndian.Uint32(content)
		rr.protoStatus = content[4]
		rr.ended = true
	default:
		return fmt.Errorf("%w: type %d", errUnknown, typ)
	}
	return nil
}

// readRecord reads one record into buf, with timeout as the deadline.
// The content aliases buf.
func readRecord(c net.Conn, br *bufio.Reader, buf []byte, timeout time.Duration) (recType, uint16, []byte, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return 0, 0, nil, fmt.Errorf("fastcgi: setting read deadline: %w", err)
	}
	// The header is read into buf too: an array of its own would escape
	// to the heap through io.ReadFull, once per record.
	if _, err := io.ReadFull(br, buf[:headerLen]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, 0, nil, errNoEnd
		}
		return 0, 0, nil, fmt.Errorf("fastcgi: reading record header: %w", err)
	}
	hd := fcgiwire.ParseHeader(buf[:headerLen])
	if hd.Version != fcgiwire.Version1 {
		return 0, 0, nil, fmt.Errorf("%w: version %d", errProtocol, hd.Version)
	}
	typ, id := hd.Type, hd.ID
	n, pad := int(hd.ContentLength), int(hd.PaddingLength)
	// n+pad <= maxContent+maxPadding = len(buf) by the field widths.
	if _, err := io.ReadFull(br, buf[:n+pad]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, 0, nil, fmt.Errorf("%w (inside a record)", errNoEnd)
		}
		return 0, 0, nil, fmt.Errorf("fastcgi: reading record: %w", err)
	}
	return typ, id, buf[:n], nil
}

// getValuesRecord is an FCGI_GET_VALUES record asking the usual three
// variables, ready to write.
func getValuesRecord() []byte {
	var content []byte
	for _, name := range []string{"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"} {
		content = fcgiwire.AppendPair(content, name, "")
	}
	return fcgiwire.AppendRecord(nil, typeGetValues, 0, content, fcgiwire.PadFor(len(content)))
}
