package authorizer

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/junction-gw/junction/internal/fcgiwire"
)

// fakeRequest is what the fake authorizer received.
type fakeRequest struct {
	role   uint16
	flags  uint8
	params map[string]string
	stdin  []byte
}

// reply is what the fake authorizer answers.
type reply struct {
	stdout  string
	stderr  string
	status  uint8 // END_REQUEST protocolStatus
	noEnd   bool  // close the connection after stdout, without END_REQUEST
	hang    bool  // never answer
	closeIt bool  // close after END_REQUEST even with KEEP_CONN
}

// fakeAuth is an in-process FastCGI application in the Authorizer role,
// framed with internal/fcgiwire.
type fakeAuth struct {
	ln      net.Listener
	handle  func(req fakeRequest) reply
	accepts atomic.Int32
	mu      sync.Mutex
	got     []fakeRequest
	wg      sync.WaitGroup
	done    chan struct{}
}

func startFake(t testing.TB, handle func(req fakeRequest) reply) *fakeAuth {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "auth.sock"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAuth{ln: ln, handle: handle, done: make(chan struct{})}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepts.Add(1)
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		close(f.done)
		ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeAuth) addr() string { return "unix:" + f.ln.Addr().String() }

func (f *fakeAuth) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.got...)
}

func (f *fakeAuth) serve(c net.Conn) {
	defer c.Close()
	go func() {
		<-f.done
		c.Close()
	}()
	for {
		req, err := readFakeRequest(c)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.got = append(f.got, req)
		f.mu.Unlock()
		rp := f.handle(req)
		if rp.hang {
			<-f.done
			return
		}
		var out []byte
		out = appendStream(out, fcgiwire.TypeStdout, []byte(rp.stdout))
		if rp.stderr != "" {
			out = appendStream(out, fcgiwire.TypeStderr, []byte(rp.stderr))
		}
		if rp.noEnd {
			c.Write(out)
			return
		}
		var end [8]byte
		end[4] = rp.status
		out = fcgiwire.AppendRecord(out, fcgiwire.TypeEndRequest, 1, end[:], 0)
		if _, err := c.Write(out); err != nil {
			return
		}
		if req.flags&fcgiwire.FlagKeepConn == 0 || rp.closeIt {
			return
		}
	}
}

// appendStream appends s as records of type t ending with an empty one.
func appendStream(dst []byte, t fcgiwire.Type, s []byte) []byte {
	for len(s) > 0 {
		n := min(len(s), 8000)
		dst = fcgiwire.AppendRecord(dst, t, 1, s[:n], fcgiwire.PadFor(n))
		s = s[n:]
	}
	return fcgiwire.AppendRecord(dst, t, 1, nil, 0)
}

func readFakeRequest(r io.Reader) (fakeRequest, error) {
	req := fakeRequest{params: map[string]string{}}
	var params []byte
	paramsDone, stdinDone := false, false
	var hdr [fcgiwire.HeaderLen]byte
	for !paramsDone || !stdinDone {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return req, err
		}
		h := fcgiwire.ParseHeader(hdr[:])
		body := make([]byte, int(h.ContentLength)+int(h.PaddingLength))
		if _, err := io.ReadFull(r, body); err != nil {
			return req, err
		}
		body = body[:h.ContentLength]
		switch h.Type {
		case fcgiwire.TypeBeginRequest:
			req.role = binary.BigEndian.Uint16(body)
			req.flags = body[2]
		case fcgiwire.TypeParams:
			if len(body) == 0 {
				paramsDone = true
			}
			params = append(params, body...)
		case fcgiwire.TypeStdin:
			if len(body) == 0 {
				stdinDone = true
			}
			req.stdin = append(req.stdin, body...)
		}
	}
	for len(params) > 0 {
		nl, u1, err := fcgiwire.ReadLen(params)
		if err != nil {
			return req, err
		}
		vl, u2, err := fcgiwire.ReadLen(params[u1:])
		if err != nil {
			return req, err
		}
		p := params[u1+u2:]
		req.params[string(p[:nl])] = string(p[nl : nl+vl])
		params = p[nl+vl:]
	}
	return req, nil
}

// fixed answers every request with stdout.
func fixed(stdout string) func(fakeRequest) reply {
	return func(fakeRequest) reply { return reply{stdout: stdout} }
}

var _ = bytes.NewReader
