package fastcgi

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/junction-gw/junction/vars"
)

func TestRecordHeaderBytes(t *testing.T) {
	got := appendRecord(nil, typeStdout, 0x0102, []byte("abc"), 5)
	want := []byte{1, 6, 1, 2, 0, 3, 5, 0, 'a', 'b', 'c', 0, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Fatalf("record bytes % x, want % x", got, want)
	}
	for n, pad := range map[int]uint8{0: 0, 1: 7, 7: 1, 8: 0, 65535: 1} {
		if got := padFor(n); got != pad {
			t.Errorf("padFor(%d) = %d, want %d", n, got, pad)
		}
	}
}

func TestRecordReader(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []record
		wantErr string
	}{
		{"two records with padding", cat(recPad(typeParams, 1, []byte("ab"), 6), recPad(typeStdin, 300, nil, 255)),
			[]record{{hdr(typeParams, 1, 2, 6), []byte("ab")}, {hdr(typeStdin, 300, 0, 255), []byte{}}}, ""},
		{"max content", rec(typeStdin, 1, bytes.Repeat([]byte{9}, maxContentLen)),
			[]record{{hdr(typeStdin, 1, maxContentLen, 1), bytes.Repeat([]byte{9}, maxContentLen)}}, ""},
		{"bad version", []byte{0, 1, 0, 1, 0, 0, 0, 0}, nil, "version 0"},
		{"truncated header", []byte{1, 1, 0}, nil, "unexpected EOF"},
		{"truncated content", []byte{1, 4, 0, 1, 0, 4, 0, 0, 'a'}, nil, "unexpected EOF"},
		{"truncated padding", []byte{1, 4, 0, 1, 0, 1, 3, 0, 'a', 0}, nil, "unexpected EOF"},
		{"empty stream", nil, nil, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := newRecordReader(bytes.NewReader(tt.in))
			var got []record
			var err error
			for {
				var r record
				r, _, err = rr.next()
				if err != nil {
					break
				}
				r.content = bytes.Clone(r.content)
				got = append(got, r)
			}
			if tt.wantErr == "" {
				if !errors.Is(err, io.EOF) || rr.inRecord() {
					t.Fatalf("stream ended with %v, want a clean EOF", err)
				}
			} else if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].header != tt.want[i].header || !bytes.Equal(got[i].content, tt.want[i].content) {
					t.Errorf("record %d: %+v %q, want %+v %q", i, got[i].header, got[i].content, tt.want[i].header, tt.want[i].content)
				}
			}
		})
	}
}

// oneByteReader returns a byte per call, with an error every other call,
// to check that the reader resumes a record where it stopped.
type stutterReader struct {
	b    []byte
	fail bool
}

var errStutter = errors.New("stutter")

func (s *stutterReader) Read(p []byte) (int, error) {
	s.fail = !s.fail
	if s.fail {
		return 0, errStutter
	}
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	p[0] = s.b[0]
	s.b = s.b[1:]
	return 1, nil
}

func TestRecordReaderResumes(t *testing.T) {
	in := cat(rec(typeParams, 5, []byte("hello")), rec(typeStdin, 5, nil))
	rr := newRecordReader(&stutterReader{b: in})
	var got []string
	for range 1000 {
		r, _, err := rr.next()
		if errors.Is(err, errStutter) {
			continue
		}
		if err != nil {
			break
		}
		got = append(got, r.Type.String()+":"+string(r.content))
	}
	if want := []string{"PARAMS:hello", "STDIN:"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestNameValues(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name    string
		in      []byte
		want    vars.Vars
		wantErr string
	}{
		{"short", []byte{1, 2, 'a', 'b', 'c'}, vv("a", "bc"), ""},
		{"empty value", []byte{1, 0, 'a'}, vv("a", ""), ""},
		{"4-byte value length", append([]byte{1, 0x80, 0, 0, 200, 'n'}, long...), vv("n", long), ""},
		{"4-byte name length", append(append([]byte{0x80, 0, 0, 200, 1}, long...), 'v'), vv(long, "v"), ""},
		{"4-byte form for a short length", []byte{0x80, 0, 0, 1, 0x80, 0, 0, 1, 'k', 'v'}, vv("k", "v"), ""},
		{"two pairs", []byte{1, 1, 'a', 'b', 1, 1, 'c', 'd'}, vv("a", "b", "c", "d"), ""},
		{"truncated length", []byte{1}, nil, "truncated name-value length"},
		{"truncated 4-byte length", []byte{0x80, 0}, nil, "truncated 4-byte"},
		{"overrun", []byte{3, 3, 'a'}, nil, "overruns"},
		{"huge claimed length", []byte{0xff, 0xff, 0xff, 0xff, 0, 'a'}, nil, "overruns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNameValues(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrProtocol) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
			again, err := parseNameValues(appendNameValues(nil, got))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip: %q, %v", again, err)
			}
		})
	}
}

func TestStripProxyScheme(t *testing.T) {
	tests := map[string]string{
		"proxy:fcgi://127.0.0.1:9000/srv/cgi/a.sh":  "/srv/cgi/a.sh",
		"proxy:fcgi://[::1]:9000/srv/x":             "/srv/x",
		"proxy:balancer://pool/srv/y":               "/srv/y",
		"proxy:fcgi://host-without-path":            "",
		"/srv/plain":                                "/srv/plain",
		"PROXY:fcgi://a/b":                          "PROXY:fcgi://a/b",
		"/srv/proxy:fcgi://not-a-prefix/etc/passwd": "/srv/proxy:fcgi://not-a-prefix/etc/passwd",
	}
	for in, want := range tests {
		if got := stripProxyScheme(in); got != want {
			t.Errorf("stripProxyScheme(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseWebServerAddrs(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"127.0.0.1", []string{"127.0.0.1"}, false},
		{" 127.0.0.1 , ::1,", []string{"127.0.0.1", "::1"}, false},
		{"127.0.0.1,example.com", []string{"127.0.0.1"}, true},
	}
	for _, tt := range tests {
		got, err := ParseWebServerAddrs(tt.in)
		if !reflect.DeepEqual(got, tt.want) || (err != nil) != tt.wantErr {
			t.Errorf("ParseWebServerAddrs(%q) = %q, %v", tt.in, got, err)
		}
	}
}

type addrConn struct {
	net.Conn
	addr net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.addr }

func TestPeerAllowed(t *testing.T) {
	s := &Server{WebServerAddrs: []string{"127.0.0.1", "::1"}}
	s.init()
	tests := []struct {
		addr net.Addr
		ok   bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 5}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 5}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 5}, false},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, true},
	}
	for _, tt := range tests {
		if err := s.peerAllowed(addrConn{addr: tt.addr}); (err == nil) != tt.ok {
			t.Errorf("peer %v: %v, want allowed=%v", tt.addr, err, tt.ok)
		}
	}
}

// TestListenerFromStdin re-executes the test binary with fd 0 set to a
// listening socket, as lighttpd bin-path and spawn-fcgi do.
func TestListenerFromStdin(t *testing.T) {
	if os.Getenv("FASTCGI_STDIN_CHILD") == "1" {
		l, ok := ListenerFromStdin()
		if ok {
			os.Stdout.WriteString("listener " + l.Addr().Network() + "\n")
			l.Close()
		} else {
			os.Stdout.WriteString("none\n")
		}
		os.Exit(0)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cf, err := conn.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	tests := []struct {
		name  string
		stdin *os.File
		want  string
	}{
		{"listening socket", lf, "listener tcp\n"},
		{"connected socket", cf, "none\n"},
		{"dev null", nil, "none\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestListenerFromStdin$")
			cmd.Env = append(os.Environ(), "FASTCGI_STDIN_CHILD=1")
			if tt.stdin != nil {
				cmd.Stdin = tt.stdin
			}
			out, err := cmd.Output()
			if err != nil || string(out) != tt.want {
				t.Fatalf("child said %q, %v; want %q", out, err, tt.want)
			}
		})
	}
}

func vv(pairs ...string) vars.Vars {
	var v vars.Vars
	for i := 0; i+1 < len(pairs); i += 2 {
		v = append(v, vars.Var{Name: pairs[i], Value: pairs[i+1]})
	}
	return v
}
