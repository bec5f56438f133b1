package fastcgi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"testing/synctest"
)

// TestBodyLengthMismatch: a body whose STDIN does not match its
// CONTENT_LENGTH fails the handler's read, also for a handler that reads
// exactly CONTENT_LENGTH bytes and no further (the CGI backend feeding a
// script): it never sees a complete body. A short body's error wraps
// io.ErrUnexpectedEOF.
func TestBodyLengthMismatch(t *testing.T) {
	tests := []struct {
		name    string
		length  int
		stdin   string
		wantErr bool
	}{
		{"exact", 10, "0123456789", false},
		{"short", 10, "01234", true},
		{"more STDIN", 10, "0123456789abc", true},
		{"more STDIN in a later record", 10, "0123456789", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var readErr error
				s := &Server{Logger: quietLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, readErr = io.ReadFull(r.Body, make([]byte, r.ContentLength))
				})}
				stdin := stdinRecs(1, []byte(tc.stdin), 4)
				if tc.name == "more STDIN in a later record" {
					stdin = cat(rec(typeStdin, 1, []byte(tc.stdin)), rec(typeStdin, 1, []byte("x")), rec(typeStdin, 1, nil))
				}
				p := nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/", "CONTENT_LENGTH", itoa(tc.length))
				tr, err := exchange(t, s, cat(begin(1, roleResponder, 0), paramsRecs(1, p), stdin))
				if err != nil || tr.reqs[1] == nil || !tr.reqs[1].ended {
					t.Fatalf("ServeConn %v, transcript %+v", err, tr.reqs[1])
				}
				if (readErr != nil) != tc.wantErr {
					t.Errorf("reading CONTENT_LENGTH bytes: %v, want an error %v", readErr, tc.wantErr)
				}
				if tc.name == "short" && !errors.Is(readErr, io.ErrUnexpectedEOF) {
					t.Errorf("short body: %v, want io.ErrUnexpectedEOF", readErr)
				}
			})
		})
	}
}

// TestClosedConnectionIsANormalEnd: a peer that closed the connection
// (here before anything was read: the reader cannot even set its read
// deadline on the pipe) ends it normally, not with an error.
func TestClosedConnectionIsANormalEnd(t *testing.T) {
	cli, srv := net.Pipe()
	cli.Close()
	s := &Server{Logger: quietLogger(), Handler: http.NotFoundHandler()}
	if err := s.ServeConn(context.Background(), srv); err != nil {
		t.Errorf("ServeConn on a connection the peer closed: %v", err)
	}
}
