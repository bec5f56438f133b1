package fastcgi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/junction-gw/junction/vars"
)

// Byte-fixture builders. They use the package's own encoder only for the
// header layout, which TestRecordHeaderBytes pins down byte by byte.

func rec(t recType, id uint16, content []byte) []byte {
	return appendRecord(nil, t, id, content, padFor(len(content)))
}

func recPad(t recType, id uint16, content []byte, pad uint8) []byte {
	return appendRecord(nil, t, id, content, pad)
}

func begin(id uint16, role uint16, flags byte) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b, role)
	b[2] = flags
	return rec(typeBeginRequest, id, b)
}

func nv(pairs ...string) []byte {
	var v vars.Vars
	for i := 0; i+1 < len(pairs); i += 2 {
		v = append(v, vars.Var{Name: pairs[i], Value: pairs[i+1]})
	}
	return appendNameValues(nil, v)
}

// paramsRecs splits the encoded pairs into PARAMS records at the given
// offsets (so a pair can straddle records) and ends the stream.
func paramsRecs(id uint16, content []byte, cuts ...int) []byte {
	var out []byte
	prev := 0
	for _, c := range append(cuts, len(content)) {
		if c > prev {
			out = append(out, rec(typeParams, id, content[prev:c])...)
		}
		prev = c
	}
	return append(out, rec(typeParams, id, nil)...)
}

func stdinRecs(id uint16, body []byte, chunk int) []byte {
	var out []byte
	for len(body) > 0 {
		n := min(chunk, len(body))
		out = append(out, rec(typeStdin, id, body[:n])...)
		body = body[n:]
	}
	return append(out, rec(typeStdin, id, nil)...)
}

func get(id uint16, flags byte, path string, extra ...string) []byte {
	p := nv(append([]string{"REQUEST_METHOD", "GET", "REQUEST_URI", path, "SERVER_PROTOCOL", "HTTP/1.1",
		"SERVER_NAME", "localhost", "SERVER_PORT", "80"}, extra...)...)
	return cat(begin(id, roleResponder, flags), paramsRecs(id, p), stdinRecs(id, nil, 1))
}

func post(id uint16, flags byte, path string, body []byte, chunk int) []byte {
	p := nv("REQUEST_METHOD", "POST", "REQUEST_URI", path, "CONTENT_LENGTH", itoa(len(body)),
		"SERVER_NAME", "localhost", "SERVER_PORT", "80")
	return cat(begin(id, roleResponder, flags), paramsRecs(id, p), stdinRecs(id, body, chunk))
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func itoa(n int) string { return strconv.Itoa(n) }

// reply is what the server sent for one request id.
type reply struct {
	stdout         bytes.Buffer
	stdoutEnded    bool
	ended          bool
	appStatus      uint32
	protocolStatus uint8
}

// transcript collects the server's output per request id.
type transcript struct {
	reqs map[uint16]*reply
	mgmt []record // management records (id 0), contents copied
	err  error    // how the stream ended (io.EOF when closed cleanly)
}

func (tr *transcript) get(id uint16) *reply {
	if tr.reqs[id] == nil {
		tr.reqs[id] = &reply{}
	}
	return tr.reqs[id]
}

// readTranscript reads records until the connection ends or stop says so.
func readTranscript(c net.Conn, stop func(*transcript) bool) *transcript {
	tr := &transcript{reqs: make(map[uint16]*reply)}
	rr := newRecordReader(c)
	for {
		if stop != nil && stop(tr) {
			return tr
		}
		r, _, err := rr.next()
		if err != nil {
			tr.err = err
			return tr
		}
		if r.ID == 0 {
			r.content = bytes.Clone(r.content)
			tr.mgmt = append(tr.mgmt, r)
			continue
		}
		rp := tr.get(r.ID)
		switch r.Type {
		case typeStdout:
			if len(r.content) == 0 {
				rp.stdoutEnded = true
			}
			rp.stdout.Write(r.content)
		case typeEndRequest:
			rp.ended = true
			rp.appStatus = binary.BigEndian.Uint32(r.content)
			rp.protocolStatus = r.content[4]
		}
	}
}

// endedCount stops a transcript after n END_REQUESTs.
func endedCount(n int) func(*transcript) bool {
	return func(tr *transcript) bool {
		c := 0
		for _, r := range tr.reqs {
			if r.ended {
				c++
			}
		}
		return c >= n
	}
}

// exchange serves one pipe connection: it writes input (in its own
// goroutine, as a web server would while reading), reads the output until
// the server closes the connection, and returns the transcript and
// ServeConn's error.
func exchange(t *testing.T, s *Server, input []byte) (*transcript, error) {
	t.Helper()
	cli, srv := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(context.Background(), srv) }()
	go func() {
		_, err := cli.Write(input)
		if err != nil && !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("writing input: %v", err)
		}
	}()
	tr := readTranscript(cli, nil)
	cli.Close()
	return tr, <-done
}

// hdr is a version-1 record header, for expected records.
func hdr(t recType, id, n uint16, pad uint8) header {
	return header{Version: version1, Type: t, ID: id, ContentLength: n, PaddingLength: pad}
}
