package app

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/junction-gw/junction/config"
)

// listen binds l's address: TCP "host:port" or "unix:/path".
func listen(l config.Listener) (net.Listener, error) {
	path, ok := strings.CutPrefix(l.Address, "unix:")
	if !ok {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return ln, nil
	}
	return listenUnix(path, l)
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
