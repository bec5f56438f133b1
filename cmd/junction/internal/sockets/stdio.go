package sockets

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// StdioConn returns the connection inetd handed over on in (normally
// stdin) and out (normally stdout). When in is a socket, as under inetd,
// xinetd and systemd Accept=yes, it is a duplicate of that socket.
// Otherwise (pipes: tests, socat EXEC) it joins duplicates of in and out
// into one net.Conn. Either way the caller still owns in and out and must
// close them (or point them at /dev/null, see Detach) so that the peer
// sees the end of the response when the returned conn is closed.
func StdioConn(in, out *os.File) (net.Conn, error) {
	c, err := net.FileConn(in)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, syscall.ENOTSOCK) {
		return nil, fmt.Errorf("sockets: stdin: %w", err)
	}
	r, err := dupPollable(in)
	if err != nil {
		return nil, fmt.Errorf("sockets: stdin: %w", err)
	}
	w, err := dupPollable(out)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("sockets: stdout: %w", err)
	}
	return &stdioConn{in: r, out: w, closed: make(chan struct{})}, nil
}

// dupPollable duplicates f's descriptor, non-blocking when it is a pipe so
// that read and write deadlines work on it.
func dupPollable(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	var dupErr error
	if err := rc.Control(func(old uintptr) { fd, dupErr = syscall.Dup(int(old)) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, dupErr
	}
	syscall.CloseOnExec(fd)
	if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
		// Best effort: without it deadlines are unsupported, not broken.
		_ = syscall.SetNonblock(fd, true)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// Detach points the given standard descriptors (0, 1, 2) at /dev/null once
// their connection has been taken over by StdioConn, so that closing the
// connection really ends it and stray writes cannot reach the peer.
func Detach(files ...*os.File) error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sockets: %w", err)
	}
	defer null.Close()
	var errs []error
	for _, f := range files {
		if err := dupOnto(int(null.Fd()), f); err != nil {
			errs = append(errs, fmt.Errorf("sockets: detach %s: %w", f.Name(), err))
		}
	}
	return errors.Join(errs...)
}

func dupOnto(src int, f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var dupErr error
	if err := rc.Control(func(fd uintptr) { dupErr = dup2(src, int(fd)) }); err != nil {
		return err
	}
	return dupErr
}

// SameFile reports whether a and b are the same open file (under classic
// inetd, stderr is the connection too, and logs must go elsewhere).
func SameFile(a, b *os.File) bool {
	ai, err1 := a.Stat()
	bi, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(ai, bi)
}

// stdioConn is a net.Conn over two files.
type stdioConn struct {
	in, out *os.File

	readDeadline atomic.Pointer[time.Time]
	closeOnce    sync.Once
	closed       chan struct{}
}

// Read reads from the input file. The end of a pipe only means the writer
// has sent everything (printf ... | junction inetd), not that the client
// went away, which codecs take an end of input on a socket to mean. So at
// the end of input Read waits for Close or the read deadline instead of
// reporting it; a client that is really gone shows up as a failed write.
func (c *stdioConn) Read(p []byte) (int, error) {
	n, err := c.in.Read(p)
	if !errors.Is(err, io.EOF) {
		return n, err
	}
	var expired <-chan time.Time
	if d := c.readDeadline.Load(); d != nil && !d.IsZero() {
		t := time.NewTimer(time.Until(*d))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-c.closed:
		return 0, io.EOF
	case <-expired:
		return 0, os.ErrDeadlineExceeded
	}
}

func (c *stdioConn) Write(p []byte) (int, error) { return c.out.Write(p) }

func (c *stdioConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		close(c.closed)
		err = errors.Join(c.in.Close(), c.out.Close())
	})
	return err
}

func (c *stdioConn) LocalAddr() net.Addr  { return stdioAddr("stdout") }
func (c *stdioConn) RemoteAddr() net.Addr { return stdioAddr("stdin") }

func (c *stdioConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// Deadlines are unsupported on a terminal; reads there simply block, which
// is fine for someone typing a request by hand.
func (c *stdioConn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(&t)
	return ignoreNoDeadline(c.in.SetReadDeadline(t))
}

func (c *stdioConn) SetWriteDeadline(t time.Time) error {
	return ignoreNoDeadline(c.out.SetWriteDeadline(t))
}

func ignoreNoDeadline(err error) error {
	if errors.Is(err, os.ErrNoDeadline) {
		return nil
	}
	return err
}

type stdioAddr string

func (a stdioAddr) Network() string { return "stdio" }
func (a stdioAddr) String() string  { return string(a) }
