package sockets

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// watch reads a directory's inotify events (names created in it or
// moved into it) until stop.
type watch struct {
	f      *os.File
	dir    string
	events chan dirEvent
	// ended is closed when the reader has read the end marker that stop
	// creates: inotify queues events in order, so every event before it
	// has been read too.
	ended chan struct{}
}

// endMarker is the file stop creates to learn that the reader has caught
// up; it is never reported as an event.
const endMarker = ".watch-end"

type dirEvent struct {
	name string
	mask uint32
}

// watchDir watches dir; react, if set, runs on the reading goroutine for
// each event as soon as it is read.
func watchDir(t *testing.T, dir string, react func(dirEvent)) *watch {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	// A non-blocking descriptor goes on the runtime's poller, so Close
	// wakes a Read blocked on it.
	w := &watch{f: os.NewFile(uintptr(fd), "inotify"), dir: dir, events: make(chan dirEvent, 1024), ended: make(chan struct{})}
	go func() {
		defer close(w.events)
		buf := make([]byte, 64<<10)
		for {
			n, err := w.f.Read(buf)
			if err != nil {
				return
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				var ev syscall.InotifyEvent
				binary.Read(bytes.NewReader(buf[off:off+syscall.SizeofInotifyEvent]), binary.NativeEndian, &ev)
				name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
				e := dirEvent{name: string(bytes.TrimRight(name, "\x00")), mask: ev.Mask}
				off += syscall.SizeofInotifyEvent + int(ev.Len)
				if e.name == endMarker {
					close(w.ended)
					continue
				}
				if react != nil {
					react(e)
				}
				w.events <- e
			}
		}
	}()
	return w
}

// stop ends the watch and returns every event queued before it was
// called. Closing at once could lose events the reader has not yet taken
// from the descriptor, so it first waits for the reader to see a marker
// file created after them.
func (w *watch) stop() []dirEvent {
	marker := filepath.Join(w.dir, endMarker)
	if err := os.WriteFile(marker, nil, 0o600); err == nil {
		select {
		case <-w.ended:
		case <-time.After(30 * time.Second):
		}
		os.Remove(marker)
	}
	w.f.Close()
	var got []dirEvent
	for e := range w.events {
		got = append(got, e)
	}
	return got
}

// TestListenUnixAppearsByRename checks that the socket file shows up at
// its path only by rename(2), already carrying its configured mode and
// owner: it is never created there, so nobody sees it with the umask's
// mode or can swap the path between bind and chmod.
func TestListenUnixAppearsByRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.sock")
	w := watchDir(t, dir, nil)
	o := Options{Mode: 0o640}
	wantUID, wantGID := os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		o.Owner, o.Group = "65534", "65534"
		wantUID, wantGID = 65534, 65534
	}
	ln, err := Listen("unix:"+path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	if got := os.FileMode(st.Mode).Perm(); got != 0o640 || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		t.Errorf("socket mode %o, want a socket with 0640", st.Mode)
	}
	if int(st.Uid) != wantUID || int(st.Gid) != wantGID {
		t.Errorf("socket owned by %d:%d, want %d:%d", st.Uid, st.Gid, wantUID, wantGID)
	}
	if got := ln.Addr().String(); got != path {
		t.Errorf("Addr() = %q, want %q", got, path)
	}
	events := w.stop()
	arrived := false
	for _, e := range events {
		if e.name != "j.sock" {
			continue
		}
		if e.mask&syscall.IN_CREATE != 0 {
			t.Errorf("%s was created in place (IN_CREATE); it must only appear by rename", path)
		}
		if e.mask&syscall.IN_MOVED_TO != 0 {
			arrived = true
		}
	}
	if !arrived {
		t.Errorf("no IN_MOVED_TO for j.sock among %d events", len(events))
	}
	// Nothing is left behind next to the socket.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "j.sock" {
			t.Errorf("left behind in %s: %s", dir, e.Name())
		}
	}
}

// TestListenUnixSymlinkSwap races a local attacker who may write in the
// socket's directory: the moment the socket's name appears, it is
// replaced by a symlink to another file. Neither the mode nor the owner
// meant for the socket may ever reach that file.
func TestListenUnixSymlinkSwap(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	var before syscall.Stat_t
	if err := syscall.Stat(victim, &before); err != nil {
		t.Fatal(err)
	}
	o := Options{Mode: 0o666}
	if os.Geteuid() == 0 {
		o.Owner, o.Group = "65534", "65534"
	}
	for i := range 100 {
		dir := t.TempDir()
		path := filepath.Join(dir, "j.sock")
		evil := filepath.Join(dir, "evil")
		w := watchDir(t, dir, func(e dirEvent) {
			// Symlink fails once an earlier event swapped the path.
			if e.name == "j.sock" && os.Symlink(victim, evil) == nil {
				os.Rename(evil, path)
			}
		})
		ln, err := Listen("unix:"+path, o)
		w.stop()
		if err == nil {
			ln.Close()
		}
		var st syscall.Stat_t
		if err := syscall.Stat(victim, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != before.Mode || st.Uid != before.Uid || st.Gid != before.Gid {
			t.Fatalf("round %d: the symlink planted at %s was followed: victim now %o %d:%d, was %o %d:%d (listen: %v)",
				i, path, st.Mode&0o7777, st.Uid, st.Gid, before.Mode&0o7777, before.Uid, before.Gid, err)
		}
	}
}

// TestBindRenameReplacesSymlink: whatever appears at the path after the
// stale check (here a symlink to another file) is replaced by the
// socket, and the socket's mode and owner never reach the link's target.
func TestBindRenameReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	var before syscall.Stat_t
	if err := syscall.Stat(victim, &before); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "j.sock")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		uid, gid = 65534, 65534
	}
	ln, err := bindRename(path, uid, gid, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK || st.Mode&0o777 != 0o660 {
		t.Errorf("%s: mode %o, want the socket with 0660", path, st.Mode)
	}
	if uid != -1 && (int(st.Uid) != uid || int(st.Gid) != gid) {
		t.Errorf("%s: owned by %d:%d, want %d:%d", path, st.Uid, st.Gid, uid, gid)
	}
	var after syscall.Stat_t
	if err := syscall.Stat(victim, &after); err != nil {
		t.Fatal(err)
	}
	if after.Mode != before.Mode || after.Uid != before.Uid || after.Gid != before.Gid {
		t.Errorf("the symlink's target changed: %o %d:%d, was %o %d:%d",
			after.Mode&0o7777, after.Uid, after.Gid, before.Mode&0o7777, before.Uid, before.Gid)
	}
}
