package fastcgi

import "syscall"

// stdinIsListener reports whether fd 0 is a socket in the listening state.
func stdinIsListener() bool {
	v, err := syscall.GetsockoptInt(0, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	return err == nil && v == 1
}
