package sockets

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/junction-gw/junction/internal/sockaddr"
)

// maxBindPath is the longest path bind(2) takes on Linux (sun_path is 108
// bytes with its terminating NUL).
const maxBindPath = 107

// listenUnix binds a unix socket. An abstract name (unix:@name) is bound
// as it is. A path is bound where nobody else can reach it, in a fresh
// directory of mode 0700 made next to path (so on the same filesystem);
// the socket gets its mode and owner there and is then renamed to path.
// So the socket never shows at path with the umask's mode, and nothing at
// path can redirect the chmod and chown: a symlink planted at path
// meanwhile is replaced by the rename, never followed. Before binding,
// listenUnix creates path's directory and removes a stale socket at path
// (one nobody listens on).
func listenUnix(a sockaddr.Addr, o Options) (net.Listener, error) {
	path, isFile := a.Path()
	if !isFile {
		ln, err := net.Listen("unix", a.Address)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return ln, nil
	}
	uid, gid, err := o.ids()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	return bindRename(path, uid, gid, o.Mode)
}

// bindRename binds a socket in a private directory next to path, gives it
// its owner (uid, gid; -1 keeps one) and mode (0 keeps the umask's), and
// renames it to path.
func bindRename(path string, uid, gid int, mode fs.FileMode) (net.Listener, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".junction-")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	// After the rename the directory is empty; after a failure it may
	// hold the socket. It is junction's own, so nothing else is lost if
	// removing it fails.
	defer func() { _ = os.RemoveAll(tmp) }()
	bound := filepath.Join(tmp, "s")
	at := bound
	if len(at) > maxBindPath && runtime.GOOS == "linux" {
		// The extra directory level made the name too long for bind;
		// the directory's descriptor names it in a few bytes.
		d, err := os.Open(tmp)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		defer d.Close()
		at = fmt.Sprintf("/proc/self/fd/%d/s", d.Fd())
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: at, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen: %s: %w", path, err)
	}
	// The kernel's name for the socket is the temporary one; the file
	// is removed by unixListener.Close at its final path.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		return nil, fmt.Errorf("listen: %s: %w", path, err)
	}
	if uid != -1 || gid != -1 {
		if err := os.Lchown(bound, uid, gid); err != nil {
			return fail(err)
		}
	}
	if mode != 0 {
		if err := os.Chmod(bound, mode); err != nil {
			return fail(err)
		}
	}
	fi, err := os.Lstat(bound)
	if err != nil {
		return fail(err)
	}
	if err := os.Rename(bound, path); err != nil {
		return fail(err)
	}
	return &unixListener{UnixListener: ln, addr: &net.UnixAddr{Name: path, Net: "unix"}, file: fi, unlink: true}, nil
}

// unixListener is a unix socket bound under a temporary name and renamed
// to its path. The kernel keeps naming the socket by the address it was
// bound at, so Addr reports the path instead; Close removes the file at
// path, as net.UnixListener's does, but only while it still is this
// socket (another process may have taken the path over since).
type unixListener struct {
	*net.UnixListener
	addr *net.UnixAddr
	file fs.FileInfo // the socket's file, to recognize it at addr

	mu     sync.Mutex
	unlink bool
}

// Addr returns the path the socket was renamed to.
func (l *unixListener) Addr() net.Addr { return l.addr }

// SetUnlinkOnClose says whether Close removes the socket file (it does
// unless told otherwise).
func (l *unixListener) SetUnlinkOnClose(unlink bool) {
	l.mu.Lock()
	l.unlink = unlink
	l.mu.Unlock()
}

// Close stops the listener and removes its socket file.
func (l *unixListener) Close() error {
	l.mu.Lock()
	if l.unlink {
		l.unlink = false
		if fi, err := os.Lstat(l.addr.Name); err == nil && os.SameFile(fi, l.file) {
			// As net.UnixListener: a file that cannot be removed stays,
			// and a later bind removes it as stale.
			_ = os.Remove(l.addr.Name)
		}
	}
	l.mu.Unlock()
	return l.UnixListener.Close()
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

// ids resolves Owner and Group to numeric ids; -1 stands for one not set.
func (o Options) ids() (uid, gid int, err error) {
	uid, gid = -1, -1
	if o.Owner != "" {
		if uid, err = lookupID(o.Owner, userID); err != nil {
			return 0, 0, fmt.Errorf("socket_owner: %w", err)
		}
	}
	if o.Group != "" {
		if gid, err = lookupID(o.Group, groupID); err != nil {
			return 0, 0, fmt.Errorf("socket_group: %w", err)
		}
	}
	return uid, gid, nil
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
