package ajp13

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// encodeForwardRequest is the test encoder for FORWARD_REQUEST packets (the
// fuzz target's round trip and the fixture builder). An empty remoteHost
// is sent as a null string, as mod_proxy_ajp does without HostnameLookups.
func encodeForwardRequest(f *forwardRequest, limit int) ([]byte, bool) {
	e := newEncoder(nil, magicIn, limit)
	e.u8(byte(typeForwardRequest))
	e.u8(f.methodCode)
	e.str(f.protocol)
	e.str(f.uri)
	e.str(f.remoteAddr)
	if f.remoteHost == "" {
		e.null()
	} else {
		e.str(f.remoteHost)
	}
	e.str(f.serverName)
	e.u16(f.serverPort)
	if f.isSSL {
		e.u8(1)
	} else {
		e.u8(0)
	}
	e.u16(uint16(len(f.headers)))
	for _, h := range f.headers {
		if h.code != 0 {
			e.u16(h.code)
		} else {
			e.str(h.name)
		}
		e.str(h.value)
	}
	for _, a := range f.attrs {
		e.u8(byte(a.code))
		switch a.code {
		case attrReqAttribute:
			e.str(a.name)
			e.str(a.value)
		case attrSSLKeySize:
			e.u16(a.keySize)
		default:
			e.str(a.value)
		}
	}
	e.u8(byte(attrDone))
	return e.finish()
}

// fwd builds a FORWARD_REQUEST packet for method code m and uri with the
// given headers (name/value pairs; coded when the name has a code) and
// attributes.
func fwd(t testing.TB, m byte, uri string, hdrs []string, attrs ...attribute) []byte {
	t.Helper()
	f := &forwardRequest{methodCode: m, protocol: "HTTP/1.1", uri: uri, remoteAddr: "192.0.2.7",
		serverName: "www.example.test", serverPort: 443}
	for i := 0; i+1 < len(hdrs); i += 2 {
		f.headers = append(f.headers, hdr(hdrs[i], hdrs[i+1]))
	}
	f.attrs = attrs
	p, ok := encodeForwardRequest(f, MaxPacketSize)
	if !ok {
		t.Fatal("fixture does not fit in a packet")
	}
	return p
}

// hdr returns a coded header when name has a code, else a named one.
func hdr(name, value string) header {
	for i, n := range requestHeaders {
		if n != "" && n == name {
			return header{code: 0xA000 | uint16(i), name: n, value: value}
		}
	}
	return header{name: name, value: value}
}

func strAttr(c attrCode, v string) attribute { return attribute{code: c, value: v} }
func reqAttr(name, v string) attribute {
	return attribute{code: attrReqAttribute, name: name, value: v}
}

// bodyPacket is a web-server body chunk: u16 length and the data.
func bodyPacket(data []byte) []byte {
	p := []byte{0x12, 0x34, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(p[2:], uint16(len(data)+2))
	binary.BigEndian.PutUint16(p[4:], uint16(len(data)))
	return append(p, data...)
}

func rawPacket(payload ...byte) []byte {
	p := []byte{0x12, 0x34, byte(len(payload) >> 8), byte(len(payload))}
	return append(p, payload...)
}

// peer plays the web server over net.Pipe. Writes go through one goroutine
// so the test never deadlocks against the server's own writes.
type peer struct {
	t      testing.TB
	c      net.Conn
	writes chan []byte
	wg     sync.WaitGroup
	done   chan error // ServeConn's result
}

func startPeer(t testing.TB, s *Server) *peer {
	t.Helper()
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	a, b := net.Pipe()
	p := &peer{t: t, c: a, writes: make(chan []byte, 64), done: make(chan error, 1)}
	go func() { p.done <- s.ServeConn(context.Background(), b) }()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for w := range p.writes {
			if _, err := a.Write(w); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { p.close() })
	return p
}

func (p *peer) send(pkts ...[]byte) {
	for _, pk := range pkts {
		p.writes <- pk
	}
}

var closeOnce sync.Map

func (p *peer) close() {
	if _, loaded := closeOnce.LoadOrStore(p, true); loaded {
		return
	}
	close(p.writes)
	p.c.Close()
	p.wg.Wait()
}

// packet reads one junction packet and returns its payload.
func (p *peer) packet() ([]byte, error) {
	p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [4]byte
	if _, err := io.ReadFull(p.c, h[:]); err != nil {
		return nil, err
	}
	if h[0] != 'A' || h[1] != 'B' {
		p.t.Fatalf("bad magic from junction: % x", h[:2])
	}
	b := make([]byte, binary.BigEndian.Uint16(h[2:]))
	_, err := io.ReadFull(p.c, b)
	return b, err
}

// reply is a decoded junction response.
type reply struct {
	status   int
	message  string
	headers  [][2]string
	coded    map[string]bool // header names sent as codes
	body     []byte
	chunks   []int // SEND_BODY_CHUNK sizes
	asks     []int // GET_BODY_CHUNK sizes
	reuse    bool
	rawChunk [][]byte
}

func (r *reply) header(name string) string {
	for _, h := range r.headers {
		if http.CanonicalHeaderKey(h[0]) == http.CanonicalHeaderKey(name) {
			return h[1]
		}
	}
	return ""
}

// readReply reads packets up to END_RESPONSE. onAsk answers each
// GET_BODY_CHUNK (nil: the test fails on one).
func (p *peer) readReply(onAsk func(n int)) (*reply, error) {
	p.t.Helper()
	r := &reply{coded: map[string]bool{}}
	for {
		b, err := p.packet()
		if err != nil {
			return r, err
		}
		d := &decoder{b: b}
		switch outType(d.u8("type")) {
		case typeSendHeaders:
			r.status = int(d.u16("status"))
			r.message, _ = d.str("message")
			n := int(d.u16("n"))
			for i := 0; i < n; i++ {
				var name string
				if c := d.peek16("name"); c&0xFF00 == 0xA000 {
					d.u16("code")
					for k, v := range responseHeaders {
						if v == c {
							name = k
						}
					}
					r.coded[name] = true
				} else {
					name, _ = d.str("name")
				}
				v, _ := d.str("value")
				r.headers = append(r.headers, [2]string{name, v})
			}
		case typeSendBodyChunk:
			n := int(d.u16("len"))
			if d.err == nil && len(b) != 3+n+1 {
				p.t.Fatalf("SEND_BODY_CHUNK payload %d bytes for a %d-byte chunk (want trailing NUL)", len(b), n)
			}
			if b[len(b)-1] != 0 {
				p.t.Fatalf("SEND_BODY_CHUNK without trailing NUL")
			}
			r.chunks = append(r.chunks, n)
			r.body = append(r.body, b[3:3+n]...)
			r.rawChunk = append(r.rawChunk, b)
		case typeGetBodyChunk:
			n := int(d.u16("size"))
			r.asks = append(r.asks, n)
			if onAsk == nil {
				p.t.Fatalf("unexpected GET_BODY_CHUNK(%d)", n)
			}
			onAsk(n)
		case typeEndResponse:
			if len(b) != 2 {
				p.t.Fatalf("END_RESPONSE payload % x", b)
			}
			r.reuse = b[1] == 1
			return r, nil
		default:
			p.t.Fatalf("unexpected packet % x", b)
		}
		if d.err != nil {
			p.t.Fatal(d.err)
		}
	}
}

// serveErr waits for ServeConn to return.
func (p *peer) serveErr() error {
	select {
	case err := <-p.done:
		return err
	case <-time.After(5 * time.Second):
		return errors.New("ServeConn did not return")
	}
}

func (p *peer) mustReply(onAsk func(int)) *reply {
	p.t.Helper()
	r, err := p.readReply(onAsk)
	if err != nil {
		p.t.Fatalf("reading reply: %v", err)
	}
	return r
}

var _ = bytes.Equal

// nopConn is a net.Conn for configuration tests that never reach I/O.
type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }
