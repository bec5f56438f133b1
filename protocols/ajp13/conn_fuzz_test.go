package ajp13

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/junction-gw/junction/protocols/internal/connserver"
	"github.com/junction-gw/junction/vars"
)

// FuzzServeConn feeds arbitrary bytes to a whole pooled AJP connection: a
// stream of FORWARD_REQUEST, body chunk, CPING and other packets, written
// up front as a web server pipelining would. Inside a synctest bubble the
// server must never panic (the Observer is asked: the accept loop recovers
// and hides it), must end the connection by itself (a hang is a synctest
// deadlock), and:
//   - everything it writes is well-formed AJP: 'A' 'B' packets of known
//     types, SEND_HEADERS before the body, body chunks with their trailing
//     NUL, nothing after END_RESPONSE reuse=0;
//   - every handler run but the last is answered with END_RESPONSE, and a
//     response carries exactly the body its handler wrote;
//   - each handler sees the request and the body the packets carry, as
//     modelled independently by fuzzModel: a body read without error is
//     exactly the concatenated chunks, and exactly Content-Length long.
//
// Handlers alternate between reading the whole body and echoing it, and not
// reading it at all (the codec then drains it or closes the connection).
// hangUp ends the web server's sending half after the input (a FIN);
// otherwise the connection stays open and the timeouts must end it.
//
// Seeds: the Apache captures (testdata/fuzz/FuzzForwardRequest) as pooled
// connections would carry them: with body chunks, CPING and several
// requests in a row; the grown corpus is in testdata/fuzz/FuzzServeConn.
func FuzzServeConn(f *testing.F) {
	captured := capturedPackets(f)
	for _, p := range captured {
		f.Add(p, false)
		f.Add(withBody(p), true)
	}
	f.Add(bytes.Join(captured, nil), false)
	f.Add(bytes.Join([][]byte{
		rawPacket(byte(typeCPing)),
		fwd(f, 4, "/post", []string{"Content-Length", "12", "Content-Type", "text/plain"}),
		bodyPacket([]byte("hello ")), bodyPacket([]byte("world!")),
		fwd(f, 4, "/chunked", []string{"Transfer-Encoding", "chunked"}),
		bodyPacket([]byte("one")), bodyPacket([]byte("two")), bodyPacket(nil),
		fwd(f, 2, "/get", []string{"Host", "h"}, strAttr(attrQueryString, "a=1")),
		fwd(f, 4, "/unread", []string{"Content-Length", "3"}), bodyPacket([]byte("abc")),
		fwd(f, 3, "/head", nil),
	}, nil), false)
	f.Add(bytes.Join([][]byte{fwd(f, 4, "/short", []string{"Content-Length", "10"}), bodyPacket([]byte("abc")), bodyPacket(nil)}, nil), true)
	f.Add(rawPacket(byte(typeShutdown)), false)
	f.Fuzz(func(t *testing.T, data []byte, hangUp bool) {
		synctest.Test(t, func(t *testing.T) { serveFuzzConn(t, data, hangUp) })
	})
}

// withBody appends to a captured request the body chunks its
// Content-Length (or chunked encoding) calls for.
func withBody(p []byte) []byte {
	f, err := decodeForwardRequest(p[headerLen:], testLimits)
	if err != nil {
		return p
	}
	r, err := f.httpRequest(context.Background(), "")
	if err != nil {
		return p
	}
	out := bytes.Clone(p)
	switch {
	case r.ContentLength > 0:
		for left := r.ContentLength; left > 0; {
			n := min(left, DefaultPacketSize-6)
			out = append(out, bodyPacket(bytes.Repeat([]byte{'b'}, int(n)))...)
			left -= n
		}
	case r.ContentLength < 0:
		out = append(out, bodyPacket([]byte("chunk one "))...)
		out = append(out, bodyPacket([]byte("chunk two"))...)
		out = append(out, bodyPacket(nil)...)
	}
	return out
}

// handlerRun is what one handler call saw and wrote.
type handlerRun struct {
	method, uri string
	length      int64
	read        bool // the handler read the body
	body        []byte
	readErr     error
	wrote       []byte
}

func serveFuzzConn(t *testing.T, data []byte, hangUp bool) {
	var mu sync.Mutex
	var runs []handlerRun
	obs := &fuzzObserver{}
	s := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			n := len(runs)
			mu.Unlock()
			rn := handlerRun{method: r.Method, uri: r.RequestURI, length: r.ContentLength, read: n%2 == 0}
			if rn.read {
				rn.body, rn.readErr = io.ReadAll(r.Body)
				rn.wrote = append([]byte("echo:"), rn.body...)
			} else {
				rn.wrote = []byte("unread")
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(rn.wrote)
			mu.Lock()
			runs = append(runs, rn)
			mu.Unlock()
		}),
		MaxHeaderBytes: 4096,
		ReadTimeout:    time.Second,
		IdleTimeout:    2 * time.Second,
		Logger:         slog.New(slog.DiscardHandler),
		Observer:       obs,
	}
	client, server := net.Pipe()
	var conn net.Conn = server
	if hangUp {
		conn = &halfClosed{Conn: server, left: len(data)}
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(context.Background(), conn) }()
	go client.Write(data) // fails once the server closes: it need not read everything
	out, _ := io.ReadAll(client)
	client.Close()
	serveErr := <-done

	if obs.panicked() {
		t.Fatalf("the connection panicked: %v", serveErr)
	}
	resps, err := parseOutput(out)
	if err != nil {
		t.Fatalf("junction wrote malformed AJP: %v\n% x", err, out[:min(len(out), 256)])
	}
	ends := len(resps)
	if ends > 0 && !resps[ends-1].ended {
		ends--
	}
	if ends < len(runs)-1 {
		t.Fatalf("%d handler runs, only %d END_RESPONSEs", len(runs), ends)
	}
	for i, rn := range runs {
		if i >= len(resps) || rn.method == http.MethodHead {
			continue
		}
		if got := resps[i]; got.status == http.StatusOK && !bytes.Equal(got.body, rn.wrote) && (got.ended || !hangUp) {
			t.Fatalf("response %d carries %q, its handler wrote %q", i, got.body, rn.wrote)
		}
	}
	want := fuzzModel(data)
	for i, rn := range runs {
		if i >= len(want) {
			t.Fatalf("handler run %d (%s %q) for a request the model does not see", i, rn.method, rn.uri)
		}
		w := want[i]
		if rn.method != w.method || rn.uri != w.uri || rn.length != w.length {
			t.Fatalf("handler run %d saw %s %q (%d), the packets say %s %q (%d)", i, rn.method, rn.uri, rn.length, w.method, w.uri, w.length)
		}
		if !rn.read || rn.readErr != nil {
			continue
		}
		if w.bodyOK && !bytes.Equal(rn.body, w.body) {
			t.Fatalf("handler run %d read %q, the chunks carry %q", i, rn.body, w.body)
		}
		if !w.bodyOK {
			t.Fatalf("handler run %d read %q without error from chunks the model refuses", i, rn.body)
		}
		if rn.length >= 0 && int64(len(rn.body)) != rn.length {
			t.Fatalf("handler run %d read %d body bytes, Content-Length %d", i, len(rn.body), rn.length)
		}
	}
}

// fuzzResponse is one answer as parsed from junction's output.
type fuzzResponse struct {
	status int
	body   []byte
	ended  bool
}

// parseOutput checks junction's packets and splits them into responses.
func parseOutput(out []byte) ([]fuzzResponse, error) {
	var resps []fuzzResponse
	var cur *fuzzResponse
	closed := false
	for len(out) > 0 {
		if closed {
			return nil, fmt.Errorf("%d bytes after END_RESPONSE reuse=0", len(out))
		}
		if len(out) < 5 || out[0] != 'A' || out[1] != 'B' {
			return nil, fmt.Errorf("bad packet header % x", out[:min(len(out), 5)])
		}
		n := int(binary.BigEndian.Uint16(out[2:]))
		if n == 0 || len(out) < headerLen+n {
			return nil, fmt.Errorf("packet of %d bytes with %d left", n, len(out)-headerLen)
		}
		p := out[headerLen : headerLen+n]
		out = out[headerLen+n:]
		switch outType(p[0]) {
		case typeCPong:
			if n != 1 || cur != nil {
				return nil, fmt.Errorf("CPONG of %d bytes, in a response: %v", n, cur != nil)
			}
		case typeGetBodyChunk:
			if n != 3 || int(binary.BigEndian.Uint16(p[1:])) > DefaultPacketSize-6 {
				return nil, fmt.Errorf("GET_BODY_CHUNK % x", p)
			}
		case typeSendHeaders:
			if cur != nil {
				return nil, fmt.Errorf("second SEND_HEADERS in a response")
			}
			d := &decoder{b: p[1:]}
			status := int(d.u16("status"))
			d.str("message")
			for range int(d.u16("num_headers")) {
				if d.peek16("name")&0xFF00 == 0xA000 {
					if c := d.u16("code"); c < 0xA001 || c > 0xA00B {
						return nil, fmt.Errorf("response header code %#x", c)
					}
				} else if name, _ := d.str("name"); !vars.ValidToken(name) {
					return nil, fmt.Errorf("response header name %q", name)
				}
				if v, null := d.str("value"); null || !vars.ValidValue(v) {
					return nil, fmt.Errorf("response header value %q", v)
				}
			}
			if d.err != nil || d.off != len(d.b) {
				return nil, fmt.Errorf("SEND_HEADERS: %v, %d of %d bytes", d.err, d.off, len(d.b))
			}
			resps = append(resps, fuzzResponse{status: status})
			cur = &resps[len(resps)-1]
		case typeSendBodyChunk:
			if cur == nil {
				return nil, fmt.Errorf("SEND_BODY_CHUNK before SEND_HEADERS")
			}
			if n < 4 || int(binary.BigEndian.Uint16(p[1:])) != n-4 || p[n-1] != 0 {
				return nil, fmt.Errorf("SEND_BODY_CHUNK % x", p[:min(n, 8)])
			}
			cur.body = append(cur.body, p[3:n-1]...)
		case typeEndResponse:
			if cur == nil || n != 2 || p[1] > 1 {
				return nil, fmt.Errorf("END_RESPONSE % x, in a response: %v", p, cur != nil)
			}
			cur.ended = true
			closed = p[1] == 0
			cur = nil
		default:
			return nil, fmt.Errorf("packet type %d", p[0])
		}
	}
	return resps, nil
}

// modelled is what the packets say one request is.
type modelled struct {
	method, uri string
	length      int64
	body        []byte
	bodyOK      bool // the body's chunks are well formed and complete
}

// fuzzModel follows the packet stream as the AJP13 document describes it,
// without the codec's connection code: CPING and PING are skipped, each
// FORWARD_REQUEST that decodes into a request is followed by its body
// chunks (u16 length and data; Content-Length bytes, or up to an empty
// chunk for a chunked body). It stops where the codec must close the
// connection. Handlers alternate reading and not reading the body, as in
// serveFuzzConn: an unread body longer than maxDrain ends the connection.
func fuzzModel(data []byte) []modelled {
	var out []modelled
	buf := make([]byte, DefaultPacketSize)
	r := bytes.NewReader(data)
	for {
		p, err := readPacket(r, buf)
		if err != nil || len(p) == 0 {
			return out
		}
		switch inType(p[0]) {
		case typeCPing, typePing:
			continue
		case typeForwardRequest:
		default:
			return out
		}
		f, err := decodeForwardRequest(p, decodeLimits{maxHeaderBytes: 4096, maxHeaders: maxHeaders})
		if err != nil {
			return out
		}
		req, err := f.httpRequest(context.Background(), "")
		if err != nil {
			return out
		}
		m := modelled{method: req.Method, uri: req.RequestURI, length: req.ContentLength, bodyOK: true}
		read := len(out)%2 == 0
		if !read && req.ContentLength > maxDrain {
			return append(out, m)
		}
		for left := req.ContentLength; left != 0; {
			p, err := readPacket(r, buf)
			if err != nil || len(p) == 1 || len(p) >= 2 && int(binary.BigEndian.Uint16(p)) != len(p)-2 {
				m.bodyOK = false
				return append(out, m)
			}
			chunk := p[min(len(p), 2):]
			if len(chunk) == 0 && left < 0 {
				break
			}
			if len(chunk) == 0 || left > 0 && int64(len(chunk)) > left {
				m.bodyOK = false
				return append(out, m)
			}
			m.body = append(m.body, chunk...)
			if !read && len(m.body) > maxDrain {
				return append(out, m)
			}
			if left > 0 {
				left -= int64(len(chunk))
			}
		}
		out = append(out, m)
	}
}

// fuzzObserver notes whether a connection ended in a panic.
type fuzzObserver struct {
	mu      sync.Mutex
	reasons []string
}

func (o *fuzzObserver) ConnOpened()  {}
func (o *fuzzObserver) ConnClosed()  {}
func (o *fuzzObserver) Event(string) {}
func (o *fuzzObserver) DecodeError(r string) {
	o.mu.Lock()
	o.reasons = append(o.reasons, r)
	o.mu.Unlock()
}

func (o *fuzzObserver) panicked() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Contains(o.reasons, connserver.ReasonPanic)
}

// halfClosed is the server's end of a net.Pipe whose peer sent left bytes
// and then closed its sending half, as a TCP FIN does: reads past those
// bytes return io.EOF while writes still reach the peer. (Closing a
// net.Pipe end fails the other end's writes and deadlines too, which no
// socket does.)
type halfClosed struct {
	net.Conn
	mu   sync.Mutex
	left int
}

func (c *halfClosed) Read(p []byte) (int, error) {
	c.mu.Lock()
	left := c.left
	c.mu.Unlock()
	if left == 0 {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p[:min(len(p), left)])
	c.mu.Lock()
	c.left -= n
	c.mu.Unlock()
	return n, err
}
