package sockets

import (
	"os"
	"strconv"
	"syscall"
)

// CloseOnExecInherited marks every descriptor above standard error that
// the process has close-on-exec. Go opens its own descriptors so, but one
// junction was started with (a supervisor's pipe, a file a shell left
// open) would otherwise reach every program junction starts: CGI scripts,
// also those running as other users (run_as owner, user_dir), and spawned
// instances. Listening sockets given as fd:N or by systemd are used
// through duplicates, and a child gets the descriptors it is given
// whatever their flag. The command calls it first thing.
func CloseOnExecInherited() {
	if closeRangeCloexec() {
		return
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return // no /proc: nothing more to be done portably
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
