package sockets

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloseOnExecInherited: a descriptor junction was started with (here
// a pipe made without O_CLOEXEC, as a supervisor or shell leaves one) is
// kept from the programs junction starts, CGI scripts running as other
// users among them; standard input, output and error are left alone.
func TestCloseOnExecInherited(t *testing.T) {
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	before := make(map[int]int)
	for fd := range 3 {
		before[fd], _ = unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	}
	CloseOnExecInherited()
	for _, fd := range p {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d: flags %#x, %v: not close-on-exec", fd, flags, err)
		}
	}
	for fd, want := range before {
		if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags != want {
			t.Errorf("fd %d: flags %#x, were %#x", fd, flags, want)
		}
	}
}
