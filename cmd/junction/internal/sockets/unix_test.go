package sockets

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestUnixListenerClose checks that Close removes the socket's file, and
// only while the path still is that socket.
func TestUnixListenerClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.sock")
	ln, err := Listen("unix:"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("after Close: %v, want the socket file gone", err)
	}

	ln, err = Listen("unix:"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Another process took the path over meanwhile.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("Close removed a file that was not its socket: %v", err)
	}
}

// TestListenUnixLeavesNothing checks that a bind that fails leaves no
// temporary directory behind.
func TestListenUnixLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	_, err := Listen("unix:"+filepath.Join(dir, "j.sock"), Options{Owner: "no-such-user-junction"})
	if err == nil || !strings.Contains(err.Error(), "socket_owner") {
		t.Fatalf("listen = %v, want a socket_owner error", err)
	}
	if os.Geteuid() != 0 {
		// Giving the socket away needs root: chown fails after the bind.
		_, err := Listen("unix:"+filepath.Join(dir, "j.sock"), Options{Owner: "0"})
		if err == nil {
			t.Fatal("listen with socket_owner 0 as non-root succeeded")
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}

// TestListenUnixLongPath binds a path whose temporary name would be too
// long for bind(2), though the path itself is not.
func TestListenUnixLongPath(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the long-name fallback is /proc/self/fd")
	}
	dir := t.TempDir()
	name := strings.Repeat("d", maxBindPath-len(dir)-len("/x.sock")-1)
	path := filepath.Join(dir, name, "x.sock")
	if len(path) > maxBindPath {
		t.Fatalf("test path is %d bytes", len(path))
	}
	ln, err := Listen("unix:"+path, Options{Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want a socket of mode 0600", path, fi.Mode(), err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
