package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/junction-gw/junction/config"
	"github.com/junction-gw/junction/protocols/fastcgi"
)

// listen returns l's listening socket. The address is one of
//
//	host:port      TCP; an inherited systemd socket bound there is used
//	unix:/path     unix socket; likewise
//	fd:N           a listening socket inherited on descriptor N (fd:0 from
//	               lighttpd bin-path, spawn-fcgi, Apache mod_fcgid)
//	systemd:NAME   the systemd socket named NAME (FileDescriptorName=)
//	systemd        the next systemd socket no earlier listener took
func listen(l config.Listener) (net.Listener, error) {
	return activation().listen(l)
}

// activation holds the sockets systemd passed to this process. They can be
// taken from the environment only once per process (which then forgets
// LISTEN_*), hence the one package-level value.
var activation = sync.OnceValue(func() *sockets {
	s := &sockets{}
	fds, names, err := parseActivation(os.Getenv, os.Getpid())
	unsetActivation()
	if err != nil {
		s.err = err
		return s
	}
	s.adopt(fds, names)
	return s
})

// unsetActivation keeps LISTEN_* away from the CGI scripts and other
// children: they are about junction's own descriptors.
func unsetActivation() {
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		_ = os.Unsetenv(k) // fails only for an invalid name
	}
}

// sdListenFDsStart is the first descriptor systemd passes (SD_LISTEN_FDS_START).
const sdListenFDsStart = 3

// parseActivation reads systemd's socket activation variables: it returns
// the inherited descriptors and their names, or nothing when they are not
// meant for pid.
func parseActivation(getenv func(string) string, pid int) ([]int, []string, error) {
	if getenv("LISTEN_PID") == "" {
		return nil, nil, nil
	}
	if p, err := strconv.Atoi(getenv("LISTEN_PID")); err != nil || p != pid {
		// Meant for another process (a parent that did not unset them).
		return nil, nil, nil
	}
	n, err := strconv.Atoi(getenv("LISTEN_FDS"))
	if err != nil || n < 0 || n > 1024 {
		return nil, nil, fmt.Errorf("listen: LISTEN_FDS=%q is not a count of descriptors", getenv("LISTEN_FDS"))
	}
	fds := make([]int, n)
	names := make([]string, n)
	var given []string
	if v := getenv("LISTEN_FDNAMES"); v != "" {
		given = strings.Split(v, ":")
	}
	for i := range fds {
		fds[i] = sdListenFDsStart + i
		if i < len(given) {
			names[i] = given[i]
		}
	}
	return fds, names, nil
}

// sockets are listening sockets inherited at start, handed out to the
// configured listeners.
type sockets struct {
	mu   sync.Mutex
	err  error // from the environment; reported when a socket is asked for
	list []*inheritedSocket
}

type inheritedSocket struct {
	fd   int
	name string
	ln   net.Listener // nil when fd is not a listening stream socket
	err  error        // why ln is nil
	used bool
}

// adopt wraps each descriptor as a listener and closes the original.
func (s *sockets) adopt(fds []int, names []string) {
	for i, fd := range fds {
		is := &inheritedSocket{fd: fd, name: names[i]}
		is.ln, is.err = fileListener(fd, "systemd:"+names[i])
		if is.err == nil {
			_ = syscall.Close(fd) // the listener holds a duplicate
		} else {
			syscall.CloseOnExec(fd) // not ours to use; keep it from scripts
		}
		s.list = append(s.list, is)
	}
}

// listen returns the socket for l: inherited when the address says so or
// matches an inherited socket, bound otherwise.
func (s *sockets) listen(l config.Listener) (net.Listener, error) {
	addr := l.Address
	if fdStr, ok := strings.CutPrefix(addr, "fd:"); ok {
		return listenFD(fdStr, l.Protocol)
	}
	if addr == "systemd" || strings.HasPrefix(addr, "systemd:") {
		return s.systemd(addr)
	}
	if ln := s.byAddress(addr); ln != nil {
		return ln, nil
	}
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		// No TCP keep-alive probes on accepted connections: every
		// listener has an idle_timeout, and the four setsockopt calls per
		// connection are a measurable share of a per-request SCGI
		// connection's cost.
		lc := net.ListenConfig{KeepAlive: -1}
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return ln, nil
	}
	return listenUnix(path, l)
}

// systemd takes the socket named by addr ("systemd:NAME"), or for plain
// "systemd" the first one not taken yet.
func (s *sockets) systemd(addr string) (net.Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if len(s.list) == 0 {
		return nil, fmt.Errorf("listen: %s: junction was not started by systemd socket activation (no LISTEN_FDS for this process)", addr)
	}
	name, named := strings.CutPrefix(addr, "systemd:")
	for _, is := range s.list {
		if is.used || named && is.name != name {
			continue
		}
		is.used = true
		if is.ln == nil {
			return nil, fmt.Errorf("listen: %s (fd %d): %w", addr, is.fd, is.err)
		}
		return is.ln, nil
	}
	if named {
		return nil, fmt.Errorf("listen: no unused systemd socket named %q (LISTEN_FDNAMES: %s)", name, s.names())
	}
	return nil, fmt.Errorf("listen: systemd: all %d inherited sockets are taken", len(s.list))
}

func (s *sockets) names() string {
	var ns []string
	for _, is := range s.list {
		ns = append(ns, strconv.Quote(is.name))
	}
	return strings.Join(ns, ", ")
}

// byAddress returns the unused inherited socket bound to addr, if any:
// systemd may hold the configured address already.
func (s *sockets) byAddress(addr string) net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, is := range s.list {
		if !is.used && is.ln != nil && sameAddr(addr, is.ln.Addr()) {
			is.used = true
			return is.ln
		}
	}
	return nil
}

// sameAddr reports whether the configured address addr names a.
func sameAddr(addr string, a net.Addr) bool {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		ua, ok := a.(*net.UnixAddr)
		return ok && ua.Name == path
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != strconv.Itoa(ta.Port) {
		return false
	}
	if host == "" {
		return ta.IP.IsUnspecified()
	}
	ip := net.ParseIP(host)
	if ip == nil {
		// A name: it matches when it resolves to the bound address.
		ips, err := net.LookupIP(host)
		if err != nil {
			return false
		}
		for _, x := range ips {
			if x.Equal(ta.IP) {
				return true
			}
		}
		return false
	}
	return ip.Equal(ta.IP) || ip.IsUnspecified() && ta.IP.IsUnspecified()
}

// listenFD takes the listening socket inherited on descriptor fdStr. A
// FastCGI listener on fd 0 is the classic FCGI_LISTENSOCK_FILENO hand-over.
func listenFD(fdStr, protocol string) (net.Listener, error) {
	fd, err := strconv.Atoi(fdStr)
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("listen: fd:%s: not a descriptor number", fdStr)
	}
	if fd == 0 && protocol == config.ProtocolFastCGI {
		ln, ok := fastcgi.ListenerFromStdin()
		if !ok {
			return nil, fmt.Errorf("listen: fd:0: stdin is not a listening socket (start junction from the web server's bin-path, spawn-fcgi or mod_fcgid)")
		}
		return ln, nullStdio(0)
	}
	ln, err := fileListener(fd, "fd:"+fdStr)
	if err != nil {
		return nil, fmt.Errorf("listen: fd:%d: %w", fd, err)
	}
	if fd <= 2 {
		return ln, nullStdio(fd)
	}
	if err := syscall.Close(fd); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen: fd:%d: %w", fd, err)
	}
	return ln, nil
}

// nullStdio points standard descriptor fd at /dev/null once its socket was
// taken, so that nothing written to stdout or stderr reaches the socket and
// no file opened later lands on fd.
func nullStdio(fd int) error {
	null, err := syscall.Open(os.DevNull, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if null == fd {
		return nil // fd was closed already and /dev/null took its place
	}
	defer syscall.Close(null)
	if err := dup2(null, fd); err != nil {
		return fmt.Errorf("listen: fd:%d to /dev/null: %w", fd, err)
	}
	return nil
}

// errNotListening is what fileListener says of a descriptor that is open
// but not a listening stream socket.
var errNotListening = errors.New("not a listening stream socket")

// fileListener returns a listener on a duplicate of fd after checking that
// fd is a listening stream socket. fd itself stays open; the caller closes
// it.
func fileListener(fd int, name string) (net.Listener, error) {
	acc, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	switch {
	case errors.Is(err, syscall.EBADF):
		return nil, fmt.Errorf("descriptor is not open: %w", err)
	case errors.Is(err, syscall.ENOTSOCK):
		return nil, fmt.Errorf("%w (not a socket)", errNotListening)
	case err != nil:
		return nil, err
	case acc == 0:
		return nil, fmt.Errorf("%w (a socket that is not listening)", errNotListening)
	}
	if typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || typ != syscall.SOCK_STREAM {
		return nil, fmt.Errorf("%w (not SOCK_STREAM)", errNotListening)
	}
	// net.FileListener duplicates again; the *os.File must own its
	// descriptor (its finalizer closes it), so give it a duplicate too.
	dup, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return nil, fmt.Errorf("dup: %w", errno)
	}
	f := os.NewFile(dup, name)
	defer f.Close()
	return net.FileListener(f)
}

// listenUnix binds a unix socket at path: it creates the parent directory,
// replaces a stale socket file (one nobody listens on), and applies the
// configured mode and owner.
func listenUnix(path string, l config.Listener) (net.Listener, error) {
	abstract := strings.HasPrefix(path, "@") // Linux abstract namespace: no file
	if !abstract {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		if err := removeStale(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if abstract {
		return ln, nil
	}
	if err := setOwnerMode(path, l); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// removeStale removes path if it is a socket that nobody accepts on (left
// over by a junction that was killed). Anything else there is an error:
// junction never deletes a regular file or a live socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("listen: %s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("listen: %s is in use by another process", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("listen: cannot tell whether %s is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("listen: removing stale socket: %w", err)
	}
	return nil
}

func setOwnerMode(path string, l config.Listener) error {
	if l.SocketOwner != "" || l.SocketGroup != "" {
		uid, gid := -1, -1
		var err error
		if l.SocketOwner != "" {
			if uid, err = lookupID(l.SocketOwner, userID); err != nil {
				return fmt.Errorf("socket_owner: %w", err)
			}
		}
		if l.SocketGroup != "" {
			if gid, err = lookupID(l.SocketGroup, groupID); err != nil {
				return fmt.Errorf("socket_group: %w", err)
			}
		}
		if err := os.Chown(path, uid, gid); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	if l.SocketMode != 0 {
		if err := os.Chmod(path, l.SocketMode.Perm()); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	return nil
}

// lookupID resolves a user or group given by name or numeric id.
func lookupID(name string, byName func(string) (string, error)) (int, error) {
	if id, err := strconv.Atoi(name); err == nil && id >= 0 {
		return id, nil
	}
	s, err := byName(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

func userID(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

func groupID(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}
