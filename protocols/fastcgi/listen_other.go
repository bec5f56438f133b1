//go:build unix && !linux

package fastcgi

import "syscall"

// stdinIsListener reports whether fd 0 is a socket. Outside Linux there is
// no portable SO_ACCEPTCONN, so a socket is taken to be the listener the
// web server handed over, as the FastCGI specification describes.
func stdinIsListener() bool {
	_, err := syscall.Getsockname(0)
	return err == nil
}
