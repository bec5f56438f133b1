package fastcgi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/idle"
	"github.com/junction-gw/junction/internal/fcgiwire"
	"github.com/junction-gw/junction/vars"
)

// wireRecord is one record as read back from the wire.
type wireRecord struct {
	typ     recType
	id      uint16
	content []byte
	size    int // header, content and padding
}

// readWireRecord reads one record; io.EOF only between records.
func readWireRecord(r io.Reader) (wireRecord, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return wireRecord{}, err
	}
	hd := fcgiwire.ParseHeader(h[:])
	if hd.Version != fcgiwire.Version1 {
		return wireRecord{}, errors.New("bad version")
	}
	buf := make([]byte, int(hd.ContentLength)+int(hd.PaddingLength))
	if _, err := io.ReadFull(r, buf); err != nil {
		return wireRecord{}, io.ErrUnexpectedEOF
	}
	return wireRecord{typ: hd.Type, id: hd.ID, content: buf[:hd.ContentLength], size: headerLen + len(buf)}, nil
}

// head is a request head decoded from the wire.
type head struct {
	flags     byte
	params    vars.Vars
	paramRecs int
	stdinEnd  bool // the empty STDIN record came right after PARAMS
}

// decodeHead checks the records of a request head in p and decodes them.
func decodeHead(t *testing.T, p []byte) head {
	t.Helper()
	r := bytes.NewReader(p)
	begin, err := readWireRecord(r)
	if err != nil || begin.typ != fcgiwire.TypeBeginRequest || begin.id != requestID || len(begin.content) != 8 {
		t.Fatalf("first record %+v, %v; want BEGIN_REQUEST", begin, err)
	}
	if role := int(begin.content[0])<<8 | int(begin.content[1]); role != fcgiwire.RoleResponder {
		t.Fatalf("role %d", role)
	}
	h := head{flags: begin.content[2]}
	var stream []byte
	for {
		rec, err := readWireRecord(r)
		if err != nil || rec.typ != fcgiwire.TypeParams || rec.id != requestID || rec.size%8 != 0 {
			t.Fatalf("PARAMS record %d: %+v, %v", h.paramRecs, rec, err)
		}
		if len(rec.content) == 0 {
			break
		}
		h.paramRecs++
		stream = append(stream, rec.content...)
	}
	for len(stream) > 0 {
		nl, u1, err := fcgiwire.ReadLen(stream)
		if err != nil {
			t.Fatal(err)
		}
		vl, u2, err := fcgiwire.ReadLen(stream[u1:])
		if err != nil {
			t.Fatal(err)
		}
		stream = stream[u1+u2:]
		if len(stream) < nl+vl {
			t.Fatalf("truncated pair")
		}
		h.params = append(h.params, vars.Var{Name: string(stream[:nl]), Value: string(stream[nl : nl+vl])})
		stream = stream[nl+vl:]
	}
	if r.Len() > 0 {
		rec, err := readWireRecord(r)
		h.stdinEnd = err == nil && rec.typ == fcgiwire.TypeStdin && len(rec.content) == 0
		if !h.stdinEnd || r.Len() > 0 {
			t.Fatalf("after PARAMS: %+v, %v, %d bytes more", rec, err, r.Len())
		}
	}
	return h
}

// The head is BEGIN_REQUEST (FCGI_KEEP_CONN under keep-alive), the
// parameters split over records when they need more than one, the empty
// PARAMS and, without a body only, the empty STDIN.
func TestAppendHead(t *testing.T) {
	big := strings.Repeat("v", 150<<10)
	for _, tt := range []struct {
		name      string
		keep      int
		body      bool
		header    string
		wantRecs  int
		wantFlags byte
	}{
		{name: "get", wantRecs: 1},
		{name: "get keep-alive", keep: 1, wantRecs: 1, wantFlags: fcgiwire.FlagKeepConn},
		{name: "post", body: true, wantRecs: 1},
		{name: "params over three records", header: big, wantRecs: 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(Options{Addr: "127.0.0.1:9000", Root: "/srv", KeepAlive: tt.keep})
			if err != nil {
				t.Fatal(err)
			}
			var r *http.Request
			if tt.body {
				r = httptest.NewRequest("POST", "/a.php", strings.NewReader("body"))
			} else {
				r = httptest.NewRequest("GET", "/a.php", nil)
			}
			if tt.header != "" {
				r.Header.Set("X-Big", tt.header)
			}
			s, err := b.resolve(r)
			if err != nil {
				t.Fatal(err)
			}
			h := decodeHead(t, b.appendHead([]byte{}, r, s, tt.body))
			if h.flags != tt.wantFlags || h.paramRecs != tt.wantRecs || h.stdinEnd == tt.body {
				t.Errorf("flags %d, %d PARAMS records, STDIN ended %v", h.flags, h.paramRecs, h.stdinEnd)
			}
			if got := h.params.Get("HTTP_X_BIG"); got != tt.header {
				t.Errorf("HTTP_X_BIG of %d bytes, want %d", len(got), len(tt.header))
			}
		})
	}
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

func testBody(n int) []byte {
	body := make([]byte, n)
	for i := range body {
		body[i] = byte(i*31 + i>>12)
	}
	return body
}

// The body goes out as STDIN records of at most maxStdinChunk bytes, one
// per read of the body, each padded to 8, then the empty STDIN record;
// the last body record and the end go out in one write.
func TestStdinFraming(t *testing.T) {
	body := testBody(200<<10 + 3)
	for _, tt := range []struct {
		name string
		r    io.Reader
		want []int // content sizes of the records
	}{
		{"whole reads", bytes.NewReader(body), []int{maxStdinChunk, maxStdinChunk, maxStdinChunk, len(body) - 3*maxStdinChunk, 0}},
		{"short reads", chunkReader{bytes.NewReader(body[:2500]), 1000}, []int{1000, 1000, 500, 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ours, theirs := net.Pipe()
			defer theirs.Close()
			want := body[:0]
			for _, n := range tt.want {
				want = body[:len(want)+n]
			}
			r := httptest.NewRequest("POST", "/a.php", tt.r)
			r.ContentLength = int64(len(want))
			b := &Backend{timeout: 10 * time.Second, addr: "test"}
			in := b.startStdin(ours, r)
			var got []byte
			var sizes []int
			for {
				rec, err := readWireRecord(theirs)
				if err != nil {
					t.Fatal(err)
				}
				if rec.typ != fcgiwire.TypeStdin || rec.id != requestID || rec.size%8 != 0 || len(rec.content) > maxContent {
					t.Fatalf("record %+v", rec)
				}
				got = append(got, rec.content...)
				sizes = append(sizes, len(rec.content))
				if len(rec.content) == 0 {
					break
				}
			}
			<-in.done
			if in.err != nil || !in.ending.Load() {
				t.Errorf("writer: err %v, ending %v", in.err, in.ending.Load())
			}
			if !bytes.Equal(got, want) {
				t.Errorf("STDIN content differs: %d bytes, want %d", len(got), len(want))
			}
			if !equalInts(sizes, tt.want) {
				t.Errorf("record sizes %v, want %v", sizes, tt.want)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// failingConn fails its first writes (a write deadline that passed
// mid-record), then accepts everything.
type failingConn struct {
	net.Conn
	fails  int
	writes int // reached the connection
	closed bool
}

func (c *failingConn) Write(p []byte) (int, error) {
	c.writes++
	if c.fails > 0 {
		c.fails--
		return len(p) / 2, os.ErrDeadlineExceeded
	}
	return len(p), nil
}

func (c *failingConn) SetWriteDeadline(time.Time) error { return nil }
func (c *failingConn) Close() error                     { c.closed = true; return nil }

// After a failed write the stream may end inside a record: the writer
// stops there, never ends STDIN (the request is not written whole, so the
// connection is not kept), and the failure is the instance's, not the
// client's.
func TestStdinStopsAfterFailedWrite(t *testing.T) {
	for _, tt := range []struct {
		name       string
		fails      int
		wantWrites int
	}{{"clean", 0, 2}, {"first write fails", 1, 1}} {
		t.Run(tt.name, func(t *testing.T) {
			fc := &failingConn{fails: tt.fails}
			r := httptest.NewRequest("POST", "/a.php", chunkReader{bytes.NewReader(testBody(100)), 60})
			r.ContentLength = 100
			b := &Backend{timeout: time.Second, addr: "test"}
			in := b.startStdin(fc, r)
			<-in.done
			if fc.writes != tt.wantWrites {
				t.Errorf("%d writes reached the connection, want %d", fc.writes, tt.wantWrites)
			}
			if clean := tt.fails == 0; (in.err == nil) != clean || in.ending.Load() != clean {
				t.Errorf("err %v, ending %v", in.err, in.ending.Load())
			}
			if in.err != nil && (!errors.Is(in.err, os.ErrDeadlineExceeded) || errors.Is(in.err, ErrClientBody)) {
				t.Errorf("err %v: want the write's error, not ErrClientBody", in.err)
			}
		})
	}
}

// gateConn's Write is in progress until the write deadline is set to the
// past: it then returns as a write already in the kernel does (complete),
// or as one still waiting for room does (the deadline error).
type gateConn struct {
	net.Conn
	complete  bool
	inWrite   chan struct{}
	interrupt chan struct{}
	once      sync.Once
}

func (c *gateConn) Write(p []byte) (int, error) {
	close(c.inWrite)
	<-c.interrupt
	if c.complete {
		return len(p), nil
	}
	return 0, os.ErrDeadlineExceeded
}

func (c *gateConn) SetWriteDeadline(d time.Time) error {
	if !d.After(time.Now()) {
		c.once.Do(func() { close(c.interrupt) })
	}
	return nil
}

// The instance may answer as soon as the end of STDIN reached it, before
// the writer returned from that write: the response is then complete
// while the writer is not done. The connection is kept once the write
// returned, never while it is in progress, and a final write still
// waiting for room does not hold the exchange up.
func TestReusableWhileEndingStdin(t *testing.T) {
	for _, complete := range []bool{true, false} {
		b := &Backend{idle: idle.New[net.Conn](1, time.Minute, nil), timeout: time.Minute, addr: "test"}
		rr := &responseReader{ended: true, protoStatus: statusRequestComplete, br: bufio.NewReader(strings.NewReader(""))}
		gc := &gateConn{complete: complete, inWrite: make(chan struct{}), interrupt: make(chan struct{})}
		in := b.startStdin(gc, httptest.NewRequest("POST", "/a.php", strings.NewReader("x")))
		<-gc.inWrite
		got := b.reusable(rr, in)
		if got != complete {
			t.Errorf("final write complete %v: reusable = %v", complete, got)
		}
		select {
		case <-in.done:
		default:
			t.Errorf("reusable returned while the writer still runs")
		}
		gc.once.Do(func() { close(gc.interrupt) })
		<-in.done
	}
}

// errReader fails every read.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// A body the client did not deliver is a 400 wrapping ErrClientBody; a
// body the instance did not take is not.
func TestClientBodyErrors(t *testing.T) {
	addr := fakeInstance(t, func(c net.Conn) {
		c.Write(rec(typeStdout, "Status: 200\r\n\r\nwrongly complete"))
		c.Write(endRequest(0))
	})
	b, err := New(Options{Addr: addr, Root: "/srv"})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("client connection reset")
	for _, tt := range []struct {
		name string
		body io.Reader
		want error
	}{
		{"short", strings.NewReader("short"), errShortBody},
		{"short in the second record", io.LimitReader(bytes.NewReader(testBody(200<<10)), 70<<10), errShortBody},
		{"no body at all", nil, errShortBody},
		{"client connection ends", io.MultiReader(strings.NewReader("some"), errReader{io.ErrUnexpectedEOF}), errShortBody},
		{"read fails", io.MultiReader(strings.NewReader("some"), errReader{boom}), boom},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/x.php", tt.body)
			if tt.body == nil {
				r.Body = nil // as a careless front end might leave it
			}
			r.ContentLength = 100 << 10
			err := b.Serve(httptest.NewRecorder(), r)
			if !errors.Is(err, ErrClientBody) || !errors.Is(err, tt.want) || backends.Status(err) != http.StatusBadRequest || !backends.IsClientError(err) {
				t.Fatalf("Serve = %v, want a 400 *backends.ClientError wrapping ErrClientBody and %v", err, tt.want)
			}
		})
	}

	// The instance closes without reading the body or answering.
	sock := unixInstance(t, func(c net.Conn, br *bufio.Reader) {})
	b, err = New(Options{Addr: "unix:" + sock, Root: "/srv"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/x.php", bytes.NewReader(testBody(4<<20)))
	err = b.Serve(httptest.NewRecorder(), r)
	if errors.Is(err, ErrClientBody) || backends.IsClientError(err) || backends.Status(err) != http.StatusBadGateway {
		t.Fatalf("Serve = %v, want a 502 that is not ErrClientBody", err)
	}
}

// A client that went away is the client's failure (499), whatever the
// instance was doing: never a 502 counted against it.
func TestClientGone(t *testing.T) {
	// The instance reads the request and never answers; it returns when
	// junction closes the connection.
	sock := unixInstance(t, func(c net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) })
	b, err := New(Options{Addr: "unix:" + sock, Root: "/srv"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("GET", "/x.php", nil).WithContext(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	err = b.Serve(httptest.NewRecorder(), r)
	if !backends.IsClientError(err) || !errors.Is(err, backends.ErrClientGone) || backends.Status(err) != backends.StatusClientClosedRequest {
		t.Fatalf("Serve = %v, want a *backends.ClientError wrapping ErrClientGone (499)", err)
	}
}
