package fastcgi

import (
	"fmt"
	"net"
	"os"
)

// ListenerFromStdin returns the listening socket a web server passed as
// fd 0 (FCGI_LISTENSOCK_FILENO), as lighttpd's bin-path, spawn-fcgi and
// Apache mod_fcgid do. It reports false when fd 0 is not a listening
// socket (a terminal, a pipe, /dev/null, a connected socket). On success
// fd 0 itself is closed; the listener owns a duplicate.
func ListenerFromStdin() (net.Listener, bool) {
	if !stdinIsListener() {
		return nil, false
	}
	f := os.NewFile(0, "fastcgi-listen-socket")
	l, err := net.FileListener(f)
	if err != nil {
		return nil, false
	}
	if err := f.Close(); err != nil {
		l.Close()
		return nil, false
	}
	return l, true
}

// WebServerAddrsFromEnv parses the FCGI_WEB_SERVER_ADDRS environment
// variable the spawning web server may set; nil means any peer.
func WebServerAddrsFromEnv() ([]string, error) {
	addrs, err := ParseWebServerAddrs(os.Getenv("FCGI_WEB_SERVER_ADDRS"))
	if err != nil {
		return nil, fmt.Errorf("fastcgi: FCGI_WEB_SERVER_ADDRS: %w", err)
	}
	return addrs, nil
}
