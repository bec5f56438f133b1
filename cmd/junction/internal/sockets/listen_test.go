package sockets

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/junction-gw/junction/internal/sockaddr"
)

func TestListenUnix(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string) // what is at path beforehand
		wantErr string                          // "" means it must succeed
	}{
		{"fresh, parent created", func(t *testing.T, path string) {}, ""},
		{"stale socket replaced", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o755)
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			// Leave the file behind as a killed process would.
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}, ""},
		{"live socket kept", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o755)
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, "in use"},
		{"regular file kept", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, []byte("data"), 0o644)
		}, "not a socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run", "j.sock")
			tt.prepare(t, path)
			ln, err := Listen("unix:"+path, Options{Mode: 0o600})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("listen = %v, want an error containing %q", err, tt.wantErr)
				}
				if _, err := os.Lstat(path); err != nil {
					t.Errorf("existing file was removed: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("socket mode = %v, want 0600", got)
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.Close()
		})
	}
}

func TestLookupID(t *testing.T) {
	tests := []struct {
		name    string
		want    int
		wantErr bool
	}{
		{"0", 0, false},
		{"1234", 1234, false},
		{"root", 0, false},
		{"no-such-user-junction", 0, true},
	}
	for _, tt := range tests {
		got, err := lookupID(tt.name, userID)
		if (err != nil) != tt.wantErr || !tt.wantErr && got != tt.want {
			t.Errorf("lookupID(%q) = %d, %v; want %d, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseActivation(t *testing.T) {
	const pid = 4242
	tests := []struct {
		name      string
		env       map[string]string
		wantFDs   []int
		wantNames []string
		wantErr   bool
	}{
		{name: "not activated", env: map[string]string{}},
		{name: "for another process", env: map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "2"}},
		{name: "pid not a number", env: map[string]string{"LISTEN_PID": "x", "LISTEN_FDS": "2"}},
		{name: "bad count", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "two"}, wantErr: true},
		{name: "negative count", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "-1"}, wantErr: true},
		{name: "unnamed", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "2"},
			wantFDs: []int{3, 4}, wantNames: []string{"", ""}},
		{name: "named", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "scgi:fcgi:web"},
			wantFDs: []int{3, 4, 5}, wantNames: []string{"scgi", "fcgi", "web"}},
		{name: "fewer names", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "scgi"},
			wantFDs: []int{3, 4}, wantNames: []string{"scgi", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fds, names, err := parseActivation(func(k string) string { return tt.env[k] }, pid)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !slices.Equal(fds, tt.wantFDs) || !slices.Equal(names, tt.wantNames) {
				t.Errorf("got %v %q, want %v %q", fds, names, tt.wantFDs, tt.wantNames)
			}
		})
	}
}

// rawFD returns a descriptor the test owns, duplicated from c's.
func rawFD(t *testing.T, c interface{ File() (*os.File, error) }) int {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// fdOpen reports whether fd is an open descriptor.
func fdOpen(fd int) bool {
	_, err := unixFcntl(fd)
	return err == nil
}

func unixFcntl(fd int) (uintptr, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if e != 0 {
		return 0, e
	}
	return r, nil
}

func TestInheritedSockets(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	path := filepath.Join(t.TempDir(), "s.sock")
	unix, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close()
	tcp2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp2.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	pipeFD, err := syscall.Dup(int(pr.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	defer syscall.Close(pipeFD)

	fds := []int{rawFD(t, tcp.(*net.TCPListener)), rawFD(t, unix.(*net.UnixListener)), pipeFD, rawFD(t, tcp2.(*net.TCPListener))}
	s := &inherited{}
	s.adopt(fds, []string{"web", "local", "bad", ""})
	// The descriptor that is no listener stays open, close-on-exec. (The
	// others were closed, but their numbers are reused at once.)
	if flags, err := unixFcntl(pipeFD); err != nil || flags&syscall.FD_CLOEXEC == 0 {
		t.Errorf("non-listening fd %d: flags %#x, %v; want open and close-on-exec", pipeFD, flags, err)
	}

	tests := []struct {
		name    string
		addr    string
		want    net.Addr // nil: an error is wanted
		wantErr string
	}{
		{name: "by name", addr: "systemd:web", want: tcp.Addr()},
		{name: "name taken", addr: "systemd:web", wantErr: "no unused systemd socket"},
		{name: "unknown name", addr: "systemd:nope", wantErr: "no unused systemd socket"},
		{name: "unix by address", addr: "unix:" + path, want: unix.Addr()},
		{name: "not a listener", addr: "systemd:bad", wantErr: "not a listening"},
		{name: "next", addr: "systemd", want: tcp2.Addr()},
		{name: "none left", addr: "systemd", wantErr: "taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := s.listen(tt.addr, Options{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("listen(%q) = %v, want an error containing %q", tt.addr, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if ln.Addr().String() != tt.want.String() {
				t.Errorf("listen(%q) on %v, want %v", tt.addr, ln.Addr(), tt.want)
			}
		})
	}

	// The TCP address of an inherited socket is used instead of binding
	// it again (which would fail: the socket is bound already).
	tcp3, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp3.Close()
	s = &inherited{}
	s.adopt([]int{rawFD(t, tcp3.(*net.TCPListener))}, []string{""})
	ln, err := s.listen(tcp3.Addr().String(), Options{})
	if err != nil {
		t.Fatalf("listen on the inherited address: %v", err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	if _, err := (&inherited{}).listen("systemd", Options{}); err == nil || !strings.Contains(err.Error(), "not started by systemd") {
		t.Errorf("systemd without activation: %v", err)
	}
}

func TestListenFD(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	conn, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := rawFD(t, tcp.(*net.TCPListener))
	syscall.Close(closed)

	tests := []struct {
		name    string
		fd      func() string
		wantErr string
	}{
		{name: "listening socket", fd: func() string { return strconv.Itoa(rawFD(t, tcp.(*net.TCPListener))) }},
		{name: "connected socket", fd: func() string { return strconv.Itoa(rawFD(t, conn.(*net.TCPConn))) }, wantErr: "not listening"},
		{name: "closed descriptor", fd: func() string { return strconv.Itoa(closed) }, wantErr: "not open"},
		{name: "not a number", fd: func() string { return "x" }, wantErr: "not a descriptor number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := tt.fd()
			ln, err := Listen("fd:"+fd, Options{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("listen(fd:%s) = %v, want an error containing %q", fd, err, tt.wantErr)
				}
				if n, err := strconv.Atoi(fd); err == nil && fdOpen(n) {
					syscall.Close(n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if n, _ := strconv.Atoi(fd); fdOpen(n) {
				t.Errorf("fd %s still open: the listener should own a duplicate only", fd)
			}
			if ln.Addr().String() != tcp.Addr().String() {
				t.Errorf("listener on %v, want %v", ln.Addr(), tcp.Addr())
			}
		})
	}
}

func TestSameAddr(t *testing.T) {
	tcp := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	any4 := &net.TCPAddr{IP: net.IPv4zero, Port: 8080}
	unix := &net.UnixAddr{Name: "/run/j.sock", Net: "unix"}
	abstract := &net.UnixAddr{Name: "@j", Net: "unix"}
	tests := []struct {
		addr string
		a    net.Addr
		want bool
	}{
		{"127.0.0.1:8080", tcp, true},
		{"127.0.0.1:8081", tcp, false},
		{"127.0.0.2:8080", tcp, false},
		{"localhost:8080", tcp, true},
		{":8080", any4, true},
		{":8080", tcp, false},
		{"0.0.0.0:8080", any4, true},
		{"[::]:8080", any4, true},
		{"unix:/run/j.sock", unix, true},
		{"unix:/run/other.sock", unix, false},
		{"unix:/run/j.sock", tcp, false},
		{"127.0.0.1:8080", unix, false},
		{"unix:@j", abstract, true},
		{"unix:@j", unix, false},
	}
	for _, tt := range tests {
		a, err := sockaddr.Parse(tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := sameAddr(a, tt.a); got != tt.want {
			t.Errorf("sameAddr(%q, %v) = %v, want %v", tt.addr, tt.a, got, tt.want)
		}
	}
}

func TestListenAbstract(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("abstract unix sockets are a Linux feature")
	}
	name := "junction-test-" + strconv.Itoa(os.Getpid())
	ln, err := Listen("unix:@"+name, Options{Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", "@"+name)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
}

// TestListenFDStdinHook checks that a protocol's own fd:0 convention
// (FastCGI's) replaces the generic check, with a hint when it fails.
func TestListenFDStdinHook(t *testing.T) {
	called := false
	_, err := Listen("fd:0", Options{FromStdin: func() (net.Listener, bool) { called = true; return nil, false }})
	if !called {
		t.Error("FromStdin was not asked for fd:0")
	}
	if err == nil || !strings.Contains(err.Error(), "stdin is not a listening socket") {
		t.Errorf("Listen(fd:0) = %v, want the hint", err)
	}
}
