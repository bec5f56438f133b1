package cgi

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

var (
	stdinPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

	errShortBody = errors.New("cgi: request body ended early")
)

// feeder writes exactly n bytes of the request body to the script's stdin.
// A body that ends short kills the script before its stdin closes, so it
// never sees a truncated body as complete. A script that stops reading is
// its business.
//
// Once the script is gone, stop ends the feeder without touching the front
// connection. A feeder blocked in body.Read cannot be interrupted from
// here: setting a read deadline on the front connection would poison it
// (net/http, the plain-HTTP front end, then drops a keep-alive connection,
// and for the other codecs it would end that request's body). So stop closes stdin and
// leaves that one read behind: it returns when the codec ends the body,
// which every codec does when the request ends (FastCGI's Close wakes it;
// SCGI closes the connection after the response; AJP13 and net/http
// return it with the next chunk from the peer, an error or their own read
// timeout). The feeder then finds stdin closed and ends, reading nothing
// more: it never outlives the request body.
type feeder struct {
	p     *proc
	stdin *os.File
	body  io.Reader
	n     int64
	done  chan struct{}

	mu      sync.Mutex
	reading bool // inside body.Read
	stopped bool // set by stop: read no more
	err     error
}

func (f *feeder) run() {
	defer close(f.done)
	bp := stdinPool.Get().(*[]byte)
	defer stdinPool.Put(bp)
	buf := *bp
	for n := f.n; n > 0; {
		m, rerr, ok := f.read(buf[:min(int64(len(buf)), n)])
		if !ok {
			break
		}
		if m > 0 {
			if _, werr := f.stdin.Write(buf[:m]); werr != nil {
				break // the script closed its end, or stop closed ours
			}
			n -= int64(m)
		}
		if rerr != nil && n > 0 {
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			// Recorded before the kill, so finish, which runs after the
			// script is reaped, sees it.
			f.mu.Lock()
			f.err = fmt.Errorf("%w (%d bytes missing): %w", errShortBody, n, rerr)
			f.mu.Unlock()
			_ = f.p.signal(syscall.SIGKILL) // ErrProcessDone: it is gone anyway
			break
		}
	}
	_ = f.stdin.Close() // a pipe end; fails only when stop closed it first
}

// read reads from the body unless stop was called; ok is false then.
func (f *feeder) read(buf []byte) (m int, err error, ok bool) {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return 0, nil, false
	}
	f.reading = true
	f.mu.Unlock()
	m, err = f.body.Read(buf)
	f.mu.Lock()
	f.reading = false
	f.mu.Unlock()
	return m, err, true
}

// fed reports whether the whole body reached the script's stdin, or the
// script closed it: nothing more will be read of the request body. A nil
// feeder (no body) is fed.
func (f *feeder) fed() bool {
	if f == nil {
		return true
	}
	select {
	case <-f.done:
	default:
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err == nil
}

// stop ends feeding a script that has exited and returns the body error.
// It waits for the feeder unless the feeder is blocked reading the body.
func (f *feeder) stop() error {
	f.mu.Lock()
	f.stopped = true
	reading := f.reading
	f.mu.Unlock()
	// Unblocks a write to a pipe still held open by something the script
	// started.
	_ = f.stdin.Close()
	if !reading {
		<-f.done
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
