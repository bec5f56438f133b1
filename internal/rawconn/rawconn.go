// Package rawconn makes the reads and writes of a non-blocking socket as
// raw system calls, through the connection's syscall.RawConn, instead of
// through the runtime's blocking-syscall path.
//
// Why: the Go runtime treats every system call made with syscall.Syscall
// as one that may block. Entering one wakes the sysmon thread from its
// deep sleep when the process was idle, and a call that lasts more than a
// sysmon tick gets its P handed to another thread. A write on loopback TCP
// often lasts that long, because the kernel delivers the data to the
// receiving socket and wakes the receiver inline; on a persistent
// connection (AJP from Apache, kept connections to app instances) that
// churn is a visible share of junction's CPU per request. A read or a
// write on a non-blocking socket never blocks (it returns EAGAIN, and the
// wait happens on the runtime's poller), so it can be made raw: no sysmon
// wake-up and no P hand-off (docs/ARCHITECTURE.md has the measurements).
//
// Deadlines, Close and everything else behave as on the wrapped
// connection.
package rawconn

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a net.Conn whose Read and Write are raw system calls.
type Conn struct {
	net.Conn
	rc syscall.RawConn

	// The calls RawConn runs are bound once per connection, and each
	// direction keeps its call's state here under its own lock: a closure
	// made per call, with its captured variables, cost three allocations
	// per Read or Write.
	rd, wr     ioState
	readFn     func(fd uintptr) bool
	writeFn    func(fd uintptr) bool
	rdMu, wrMu sync.Mutex

	// Quiet's check, made once per connection so that it allocates
	// nothing when it runs.
	peek  func(fd uintptr)
	clean bool // the last peek found nothing to read
}

// ioState is one direction's call: the buffer, what was done, and the
// error number that ended it.
type ioState struct {
	b     []byte
	n     int
	errno syscall.Errno
}

// Wrap returns c with raw reads and writes, or c itself when it has no
// descriptor to make them on.
func Wrap(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	w := &Conn{Conn: c, rc: rc}
	w.readFn, w.writeFn = w.readFD, w.writeFD
	return w
}

// SyscallConn returns the wrapped connection's RawConn.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

// Read reads once what is there, waiting on the poller while nothing is.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rdMu.Lock()
	c.rd = ioState{b: b}
	err := c.rc.Read(c.readFn)
	n, errno := c.rd.n, c.rd.errno
	c.rd.b = nil
	c.rdMu.Unlock()
	switch {
	case err != nil:
		return 0, err // closed, deadline passed
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readFD is Read's call: one read(2), or false to wait for the poller.
func (c *Conn) readFD(fd uintptr) bool {
	b := c.rd.b
	for {
		m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait for the poller, then try again
		}
		c.rd.n, c.rd.errno = int(m), e
		return true
	}
}

// Write writes all of b, waiting on the poller while the socket is full.
func (c *Conn) Write(b []byte) (int, error) {
	c.wrMu.Lock()
	c.wr = ioState{b: b}
	err := c.rc.Write(c.writeFn)
	n, errno := c.wr.n, c.wr.errno
	c.wr.b = nil
	c.wrMu.Unlock()
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

// writeFD is Write's call: write(2) until all is written, an error, or
// false to wait for the poller.
func (c *Conn) writeFD(fd uintptr) bool {
	b := c.wr.b
	for c.wr.n < len(b) {
		m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[c.wr.n])), uintptr(len(b)-c.wr.n))
		switch e {
		case 0:
			c.wr.n += int(m)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.wr.errno = e
			return true
		}
	}
	return true
}

// Quiet reports whether the connection has nothing to read and is not
// closed by the peer: one non-blocking MSG_PEEK. A kept connection that is
// not quiet cannot carry another request: the peer ended it, or sent bytes
// nobody asked for (an HTTP server's 408 before it closes). The read
// deadline plays no part: a kept connection's last one has often passed.
// No read may run on c at the same time.
func (c *Conn) Quiet() bool {
	if c.peek == nil {
		c.peek = c.peekFD
	}
	c.clean = false
	err := c.rc.Control(c.peek)
	return err == nil && c.clean
}

// peekFD is Quiet's MSG_PEEK, run through RawConn.Control so that the
// descriptor stays valid while it runs (RawConn.Read would refuse to run
// it once the read deadline has passed).
func (c *Conn) peekFD(fd uintptr) {
	var buf [1]byte
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	c.clean = errno == syscall.EAGAIN
}

// Quiet reports whether c, when it is a *Conn, passes Conn.Quiet; a
// connection without a descriptor to peek at counts as quiet.
func Quiet(c net.Conn) bool {
	if rc, ok := c.(*Conn); ok {
		return rc.Quiet()
	}
	return true
}

// opError describes a failed call the way package net does.
func (c *Conn) opError(op string, errno syscall.Errno) error {
	var network string
	if a := c.LocalAddr(); a != nil {
		network = a.Network()
	}
	return &net.OpError{Op: op, Net: network, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
