//go:build !unix

package fastcgi

// stdinIsListener is false where fd 0 cannot be a socket.
func stdinIsListener() bool { return false }
