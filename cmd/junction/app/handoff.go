package app

import (
	"errors"
	"net"
	"sync"
)

// socket is one bound listening socket shared by a sequence of codec
// servers. A reload that changes a listener's options starts a new server
// on the same socket and shuts the old one down gracefully: the old
// server's Shutdown closes only its own view, never the socket, so no
// connection attempt is refused in between (the kernel's backlog holds
// connections while no server is accepting).
type socket struct {
	ln      net.Listener
	results chan accepted // from the accept pump to whichever view accepts
	closing chan struct{} // closed by Close
	done    chan struct{} // closed when the pump ended
	err     error         // why the pump ended; valid after done
	closeMu sync.Once
}

type accepted struct {
	c   net.Conn
	err error
}

// newSocket starts the accept pump on ln. The pump ends when ln is closed
// (Close) or fails for good.
func newSocket(ln net.Listener) *socket {
	s := &socket{ln: ln, results: make(chan accepted), closing: make(chan struct{}), done: make(chan struct{})}
	go s.pump()
	return s
}

func (s *socket) pump() {
	defer close(s.done)
	for {
		c, err := s.ln.Accept()
		if err != nil && errors.Is(err, net.ErrClosed) {
			s.err = err
			return
		}
		// Temporary errors (EMFILE, ...) go to the server too, which backs
		// off before it accepts again; this send waits for it.
		select {
		case s.results <- accepted{c: c, err: err}:
		case <-s.closing:
			if c != nil {
				c.Close()
			}
			s.err = net.ErrClosed
			return
		}
	}
}

// view returns a listener for one server.
func (s *socket) view() *view {
	return &view{s: s, closed: make(chan struct{})}
}

// Close closes the socket itself; views then return net.ErrClosed.
func (s *socket) Close() error {
	var err error
	s.closeMu.Do(func() {
		close(s.closing)
		err = s.ln.Close()
	})
	return err
}

// view is one server's net.Listener on a shared socket.
type view struct {
	s      *socket
	closed chan struct{}
	once   sync.Once
}

// Accept returns the next connection, or net.ErrClosed once this view or
// the socket is closed.
func (v *view) Accept() (net.Conn, error) {
	select {
	case <-v.closed:
		return nil, net.ErrClosed
	default:
	}
	select {
	case a := <-v.s.results:
		select {
		case <-v.closed:
			// Closed while this one arrived: the server is shutting down
			// and would drop it. Hand it to the next server instead.
			if a.c != nil {
				go v.s.requeue(a)
			}
			return nil, net.ErrClosed
		default:
		}
		return a.c, a.err
	case <-v.closed:
		return nil, net.ErrClosed
	case <-v.s.closing:
		return nil, net.ErrClosed
	case <-v.s.done:
		return nil, v.s.err
	}
}

// requeue offers a connection to the other views, closing it when the
// socket closes first.
func (s *socket) requeue(a accepted) {
	select {
	case s.results <- a:
	case <-s.closing:
		a.c.Close()
	}
}

// Close closes this view only; the socket stays open for other servers.
func (v *view) Close() error {
	v.once.Do(func() { close(v.closed) })
	return nil
}

// Addr is the socket's address.
func (v *view) Addr() net.Addr { return v.s.ln.Addr() }
