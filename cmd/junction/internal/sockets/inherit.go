package sockets

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/junction-gw/junction/internal/sockaddr"
)

// activation holds the sockets systemd passed to this process. They can be
// taken from the environment only once per process (which then forgets
// LISTEN_*), hence the one package-level value.
var activation = sync.OnceValue(func() *inherited {
	s := &inherited{}
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

// inherited are the listening sockets systemd passed at start, handed out
// to the configured listeners.
type inherited struct {
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
func (s *inherited) adopt(fds []int, names []string) {
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

// listen returns the socket for addr: inherited when the address says so
// or matches an inherited socket, bound otherwise.
func (s *inherited) listen(addr string, o Options) (net.Listener, error) {
	if fdStr, ok := strings.CutPrefix(addr, "fd:"); ok {
		return listenFD(fdStr, o)
	}
	if addr == "systemd" || strings.HasPrefix(addr, "systemd:") {
		return s.systemd(addr)
	}
	a, err := sockaddr.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if ln := s.byAddress(a); ln != nil {
		return ln, nil
	}
	return bind(a, o)
}

// systemd takes the socket named by addr ("systemd:NAME"), or for plain
// "systemd" the first one not taken yet.
func (s *inherited) systemd(addr string) (net.Listener, error) {
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

func (s *inherited) names() string {
	var ns []string
	for _, is := range s.list {
		ns = append(ns, strconv.Quote(is.name))
	}
	return strings.Join(ns, ", ")
}

// byAddress returns the unused inherited socket bound to a, if any:
// systemd may hold the configured address already.
func (s *inherited) byAddress(a sockaddr.Addr) net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, is := range s.list {
		if !is.used && is.ln != nil && sameAddr(a, is.ln.Addr()) {
			is.used = true
			return is.ln
		}
	}
	return nil
}

// sameAddr reports whether the configured address a names the bound
// address b.
func sameAddr(a sockaddr.Addr, b net.Addr) bool {
	if a.Network == "unix" {
		ub, ok := b.(*net.UnixAddr)
		return ok && ub.Name == a.Address
	}
	tb, ok := b.(*net.TCPAddr)
	if !ok {
		return false
	}
	host, port, err := net.SplitHostPort(a.Address)
	if err != nil || port != strconv.Itoa(tb.Port) {
		return false
	}
	if host == "" {
		return tb.IP.IsUnspecified()
	}
	ip := net.ParseIP(host)
	if ip == nil {
		// A name: it matches when it resolves to the bound address.
		ips, err := net.LookupIP(host)
		if err != nil {
			return false
		}
		for _, x := range ips {
			if x.Equal(tb.IP) {
				return true
			}
		}
		return false
	}
	return ip.Equal(tb.IP) || ip.IsUnspecified() && tb.IP.IsUnspecified()
}

// listenFD takes the listening socket inherited on descriptor fdStr.
func listenFD(fdStr string, o Options) (net.Listener, error) {
	fd, err := strconv.Atoi(fdStr)
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("listen: fd:%s: not a descriptor number", fdStr)
	}
	if fd == 0 && o.FromStdin != nil {
		ln, ok := o.FromStdin()
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
