package fastcgi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/junction-gw/junction/vars"
)

// testHandler serves the paths the tests use.
func testHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Script", vars.FromContext(r.Context()).Get("SCRIPT_FILENAME"))
		fmt.Fprintf(w, "hello %s %s", r.Method, r.URL.RequestURI())
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "n=%d sha=%s", n, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/elsewhere")
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(bytes.Repeat([]byte("x"), 200000))
	})
	return mux
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestServer() *Server {
	return &Server{Handler: testHandler(), Logger: quietLogger(), Multiplex: true}
}

func TestRequests(t *testing.T) {
	long := strings.Repeat("v", 300) // forces 4-byte value lengths
	longName := "HTTP_X_" + strings.Repeat("N", 200)
	params := nv("REQUEST_METHOD", "GET", "REQUEST_URI", "/hello?a=1", longName, long,
		"SCRIPT_FILENAME", "proxy:fcgi://127.0.0.1:9000/srv/cgi/hello.sh")
	body := bytes.Repeat([]byte("0123456789"), 30000) // 300 kB: several records, beyond bodyMemLimit
	sum := sha256.Sum256(body)
	tests := []struct {
		name  string
		input []byte
		want  map[uint16]string // id -> substring of stdout ("" = none expected)
		proto map[uint16]uint8  // id -> protocolStatus
	}{
		{"get", get(1, 0, "/hello"), map[uint16]string{1: "Status: 200 OK\r\nContent-Type: text/plain\r\n"}, map[uint16]uint8{1: statusRequestComplete}},
		{"params split mid pair, 4-byte lengths, padding", cat(begin(7, roleResponder, 0),
			paramsRecs(7, params, 3, 10, 17, 250, len(params)-2), stdinRecs(7, nil, 1)),
			map[uint16]string{7: "X-Script: /srv/cgi/hello.sh\r\n\r\nhello GET /hello?a=1"}, map[uint16]uint8{7: 0}},
		{"odd padding", cat(begin(2, roleResponder, 0),
			recPad(typeParams, 2, nv("REQUEST_METHOD", "GET", "REQUEST_URI", "/hello"), 255),
			recPad(typeParams, 2, nil, 3), recPad(typeStdin, 2, nil, 0)),
			map[uint16]string{2: "hello GET /hello"}, map[uint16]uint8{2: 0}},
		{"post body across records", post(3, 0, "/echo", body, 65535),
			map[uint16]string{3: fmt.Sprintf("n=%d sha=%x", len(body), sum)}, map[uint16]uint8{3: 0}},
		{"post body in small records", post(3, 0, "/echo", body[:5000], 7),
			map[uint16]string{3: fmt.Sprintf("n=5000 sha=%x", sha256.Sum256(body[:5000]))}, map[uint16]uint8{3: 0}},
		{"short body", cat(begin(1, roleResponder, 0), paramsRecs(1, nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/echo", "CONTENT_LENGTH", "10")),
			stdinRecs(1, []byte("abc"), 10)), map[uint16]string{1: "Status: 400"}, map[uint16]uint8{1: 0}},
		{"redirect passes through", get(1, 0, "/redirect"), map[uint16]string{1: "Status: 302 Found\r\nLocation: /elsewhere\r\n"}, map[uint16]uint8{1: 0}},
		{"not found", get(1, 0, "/nope"), map[uint16]string{1: "Status: 404 Not Found\r\n"}, map[uint16]uint8{1: 0}},
		{"big response", get(1, 0, "/big"), map[uint16]string{1: strings.Repeat("x", 1000)}, map[uint16]uint8{1: 0}},
		{"authorizer role", cat(begin(4, roleAuthorizer, 0)), map[uint16]string{4: ""}, map[uint16]uint8{4: statusUnknownRole}},
		{"filter role", cat(begin(4, roleFilter, 0)), map[uint16]string{4: ""}, map[uint16]uint8{4: statusUnknownRole}},
		{"params too big", cat(begin(5, roleResponder, 0), paramsRecs(5, nv("REQUEST_METHOD", "GET", "HTTP_X", strings.Repeat("a", 70000)), 30000, 60000), stdinRecs(5, nil, 1)),
			map[uint16]string{5: "Status: 431"}, map[uint16]uint8{5: 0}},
		{"no request method", cat(begin(1, roleResponder, 0), paramsRecs(1, nv("REQUEST_URI", "/")), stdinRecs(1, nil, 1)),
			map[uint16]string{1: "Status: 400"}, map[uint16]uint8{1: 0}},
		{"abort before params end", cat(begin(9, roleResponder, 0), rec(typeParams, 9, nv("A", "b")), rec(typeAbortRequest, 9, nil)),
			map[uint16]string{9: ""}, map[uint16]uint8{9: 0}},
		{"records for inactive ids ignored", cat(rec(typeStdin, 30, []byte("zz")), rec(typeAbortRequest, 31, nil), get(1, 0, "/hello")),
			map[uint16]string{1: "hello"}, map[uint16]uint8{1: 0}},
	}
	// Without multiplexing a lone GET runs inline on the reader's goroutine;
	// with it every request gets a goroutine: both must answer alike.
	for _, mpx := range []bool{true, false} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/multiplex=%v", tt.name, mpx), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					s := newTestServer()
					s.Multiplex = mpx
					tr, err := exchange(t, s, tt.input)
					if err != nil {
						t.Fatalf("ServeConn: %v", err)
					}
					for id, want := range tt.want {
						rp := tr.reqs[id]
						if rp == nil || !rp.ended {
							t.Fatalf("request %d: no END_REQUEST (transcript %+v)", id, tr.reqs)
						}
						if rp.protocolStatus != tt.proto[id] {
							t.Errorf("request %d: protocolStatus %d, want %d", id, rp.protocolStatus, tt.proto[id])
						}
						out := rp.stdout.String()
						if want == "" && out != "" || !strings.Contains(out, want) {
							t.Errorf("request %d: stdout %.300q, want it to contain %q", id, out, want)
						}
						if want != "" && !rp.stdoutEnded {
							t.Errorf("request %d: STDOUT stream not ended", id)
						}
					}
					if len(tr.reqs) != len(tt.want) {
						t.Errorf("replies for %d ids, want %d", len(tr.reqs), len(tt.want))
					}
				})
			})
		}
	}
}

func TestProtocolErrorsCloseConnection(t *testing.T) {
	badVersion := get(1, 0, "/hello")
	badVersion[0] = 2
	tests := []struct {
		name  string
		input []byte
		want  string
	}{
		{"bad version", badVersion, "version 2"},
		{"begin with id 0", begin(0, roleResponder, 0), "request id 0"},
		{"params with id 0", rec(typeParams, 0, nv("A", "b")), "request id 0"},
		{"begin in use", cat(begin(1, roleResponder, 1), begin(1, roleResponder, 1)), "already in flight"},
		// The request still waits for its body, so it is certainly active when
		// the stray PARAMS record arrives (a finished one would be ignored).
		{"params after end", cat(begin(1, roleResponder, 1), paramsRecs(1, nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/echo", "CONTENT_LENGTH", "1")), rec(typeParams, 1, nv("A", "b"))), "after the end"},
		{"stdin after end", cat(begin(1, roleResponder, 1), paramsRecs(1, nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/echo", "CONTENT_LENGTH", "1")), stdinRecs(1, []byte("a"), 1), rec(typeStdin, 1, []byte("b"))), "after the end"},
		{"stdin before params end", cat(begin(1, roleResponder, 1), rec(typeStdin, 1, []byte("a"))), "before the end"},
		{"short begin", rec(typeBeginRequest, 1, []byte{0, 1}), "BEGIN_REQUEST of 2 bytes"},
		{"bad name-value", cat(begin(1, roleResponder, 1), rec(typeParams, 1, []byte{5, 5, 'a'}), rec(typeParams, 1, nil)), "overruns"},
		{"stdout from peer", rec(typeStdout, 1, []byte("x")), "STDOUT record"},
		{"record cut short times out", rec(typeParams, 1, []byte("abcdefgh"))[:12], "reading record PARAMS content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, err := exchange(t, newTestServer(), tt.input)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("ServeConn error %v, want one containing %q", err, tt.want)
				}
				if !strings.HasPrefix(tt.name, "record cut") && !errors.Is(err, ErrProtocol) {
					t.Errorf("error %v does not wrap ErrProtocol", err)
				}
			})
		})
	}
}

func TestManagementRecords(t *testing.T) {
	tests := []struct {
		name string
		srv  *Server
		in   []byte
		want []record
	}{
		{"get values multiplexed", &Server{MaxConns: 10, MaxRequests: 50, Multiplex: true},
			rec(typeGetValues, 0, nv("FCGI_MAX_CONNS", "", "FCGI_MAX_REQS", "", "FCGI_MPXS_CONNS", "", "OTHER", "")),
			[]record{{hdr(typeGetValuesResult, 0, 0, 0), nv("FCGI_MAX_CONNS", "10", "FCGI_MAX_REQS", "50", "FCGI_MPXS_CONNS", "1")}}},
		{"get values defaults", &Server{},
			rec(typeGetValues, 0, nv("FCGI_MPXS_CONNS", "", "FCGI_MAX_CONNS", "", "FCGI_MAX_REQS", "")),
			[]record{{hdr(typeGetValuesResult, 0, 0, 0), nv("FCGI_MPXS_CONNS", "0", "FCGI_MAX_REQS", "1000")}}},
		{"unknown type", &Server{}, rec(recType(42), 0, []byte("??")),
			[]record{{hdr(typeUnknownType, 0, 0, 0), []byte{42, 0, 0, 0, 0, 0, 0, 0}}}},
		{"end request as management", &Server{}, rec(typeEndRequest, 0, make([]byte, 8)),
			[]record{{hdr(typeUnknownType, 0, 0, 0), []byte{3, 0, 0, 0, 0, 0, 0, 0}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt.srv.Logger = quietLogger()
				tt.srv.IdleTimeout = time.Second
				tr, err := exchange(t, tt.srv, tt.in)
				if err != nil {
					t.Fatalf("ServeConn: %v", err)
				}
				if len(tr.mgmt) != len(tt.want) {
					t.Fatalf("got %d management records, want %d", len(tr.mgmt), len(tt.want))
				}
				for i, w := range tt.want {
					g := tr.mgmt[i]
					if g.Type != w.Type || !bytes.Equal(g.content, w.content) {
						t.Errorf("record %d: %v %q, want %v %q", i, g.Type, g.content, w.Type, w.content)
					}
				}
			})
		})
	}
}
