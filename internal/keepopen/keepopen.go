// Package keepopen lets a sequence of servers share one listening socket:
// Wrap gives each server a listener whose Close stops that server's Accept
// calls without closing the socket, so the next server can go on serving
// it (junction's reload starts a server with new options on a kept socket
// this way). No goroutine runs in between: each server's Accept is the
// socket's Accept, on the server's own accept loop, and the kernel's
// backlog holds connections while no server is accepting, so none is
// refused.
//
// It works with any server that stops by closing its listener (the codec
// servers' protocols/internal/connserver, net/http.Server). Serving a
// connection that was accepted just before the stop is the server's part:
// connserver does; protocols/httpfront makes net/http do it.
package keepopen

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"time"
)

// Wrap returns a listener over l whose Close stops its Accept calls
// without closing l, so that another server can take l over.
//
// Close marks the listener closed and, while an Accept is blocked in l,
// wakes it by setting a deadline in the past on l; the last Accept to
// return clears the deadline again, before it returns. A connection that
// l returned as Close came is still returned (the caller serves it);
// later Accept calls return net.ErrClosed. The caller closes l itself.
//
// Waking needs l's SetDeadline (*net.TCPListener and *net.UnixListener
// have it). A listener without it is returned as it is, and its Close
// closes it.
func Wrap(l net.Listener) net.Listener {
	d, ok := l.(deadliner)
	if !ok {
		return l
	}
	return &listener{Listener: l, d: d}
}

type deadliner interface{ SetDeadline(time.Time) error }

// longAgo is a deadline that has passed: setting it wakes a blocked Accept.
var longAgo = time.Unix(1, 0)

type listener struct {
	net.Listener
	d deadliner

	mu        sync.Mutex
	closed    bool
	accepting int  // Accept calls inside l.Accept
	woken     bool // Close set longAgo on l; the last Accept clears it
}

func (k *listener) Accept() (net.Conn, error) {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil, net.ErrClosed
	}
	k.accepting++
	k.mu.Unlock()
	for {
		c, err := k.Listener.Accept()
		k.mu.Lock()
		if err != nil && !k.closed && errors.Is(err, os.ErrDeadlineExceeded) {
			// Another server stopping on the same socket woke every
			// Accept on it, this one too; it clears the deadline at once.
			k.mu.Unlock()
			runtime.Gosched()
			continue
		}
		closed := k.closed
		k.accepting--
		if k.accepting == 0 && k.woken {
			k.woken = false
			// Fails only when l was closed meanwhile; then there is
			// nothing left to clear.
			_ = k.d.SetDeadline(time.Time{})
		}
		k.mu.Unlock()
		if err != nil && closed {
			return nil, net.ErrClosed
		}
		return c, err
	}
}

// Close stops Accept; l stays open.
func (k *listener) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	if k.accepting == 0 {
		return nil
	}
	k.woken = true
	return k.d.SetDeadline(longAgo)
}
