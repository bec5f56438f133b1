package sockets

import "golang.org/x/sys/unix"

// closeRangeCloexec marks descriptors 3 and up close-on-exec in one
// system call (Linux 5.11); false when the kernel cannot.
func closeRangeCloexec() bool {
	const cloexec = 1 << 2 // CLOSE_RANGE_CLOEXEC
	return unix.CloseRange(3, ^uint(0), cloexec) == nil
}
