package cgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgiresp"
)

// bufSize is the stdout buffer: one pipe read fills at most this much before
// it is written and flushed.
const bufSize = 32 << 10

// maxRedirectDiscard bounds the output read and dropped after a local
// redirect head; a script that writes more is killed.
const maxRedirectDiscard = 4 << 20

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}
	stdinPool  = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

	errTimeout   = errors.New("cgi: script timed out")
	errShortBody = errors.New("cgi: request body ended early")
)

// run starts the script and relays its response.
func (b *Backend) run(w http.ResponseWriter, r *http.Request, s script) error {
	ctx, cancel := context.WithTimeoutCause(r.Context(), b.timeout, errTimeout)
	defer cancel()
	// Before cancel (deferred earlier, so run later) changes the cause.
	defer func() {
		if context.Cause(ctx) == errTimeout && r.Context().Err() == nil {
			b.timeouts.Add(1)
			if b.obs != nil {
				b.obs.TimedOut()
			}
		}
	}()

	p, stdin, err := b.start(r, s)
	if err != nil {
		return err
	}
	// On timeout or when the client goes away: SIGTERM to the group, and
	// SIGKILL if the script is still there after grace. Its exit then
	// kills the rest of the group (proc.reap).
	stop := context.AfterFunc(ctx, p.terminate)
	defer stop()
	var f *feeder
	if stdin != nil {
		f = &feeder{p: p, stdin: stdin, body: r.Body, n: r.ContentLength, done: make(chan struct{})}
		go f.run()
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(p.stdout)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()

	resp, err := cgiresp.Parse(br, b.limits)
	if err == nil && resp.LocalRedirect != "" && !s.nph {
		return b.localRedirect(r, ctx, s, p, br, f, resp.LocalRedirect)
	}
	if err != nil {
		end := endKill
		if errors.Is(err, cgiresp.ErrNoHead) {
			end = endGrace
		}
		ferr := b.finish(p, end, f)
		return b.headError(r, ctx, s, p, err, ferr)
	}
	resp.WriteHead(w)
	// Once the script has exited the rest is already in the pipe: it is
	// written without flushes and the codec sends it when the response ends.
	werr, rerr := resp.CopyBody(w, br, func() bool { return p.exited.Load() || readable(p.stdout) })
	end := endGrace
	if werr != nil || rerr != nil {
		end = endKill
	}
	ferr := b.finish(p, end, f)
	switch {
	case context.Cause(ctx) == errTimeout && r.Context().Err() == nil:
		b.log.Warn("cgi: script timed out after its response started", "script", s.Name, "timeout", b.timeout)
	case werr != nil:
		b.log.Info("cgi: client went away", "script", s.Name, "err", werr)
	case errors.Is(rerr, os.ErrDeadlineExceeded):
		b.log.Warn("cgi: output still held open after the script exited", "script", s.Name)
	case rerr != nil:
		b.log.Warn("cgi: reading script output", "script", s.Name, "err", rerr)
	case ferr != nil:
		b.log.Warn("cgi: request body", "script", s.Name, "err", ferr)
	case p.status != 0:
		b.log.Warn("cgi: script failed after its response started", "script", s.Name, "status", exitStatus(p.status))
	}
	return nil
}

// start spawns the script in its own process group.
func (b *Backend) start(r *http.Request, s script) (*proc, *os.File, error) {
	null, err := devNull()
	if err != nil {
		return nil, nil, fmt.Errorf("cgi: %s: %w", b.name, err)
	}
	fds, err := newPipes(r.ContentLength > 0, null)
	if err != nil {
		return nil, nil, err
	}
	t0 := time.Now()
	p, err := spawn(s.Filename, filepath.Dir(s.Filename), b.env.Env(r, s.Script), b.cred, fds, b.grace,
		stderrLog{log: b.log, script: s.Name})
	fds.closeChild()
	if err != nil {
		fds.closeParent()
		return nil, nil, fmt.Errorf("cgi: %s: starting %s: %w", b.name, s.Filename, &os.PathError{Op: "fork/exec", Path: s.Filename, Err: err})
	}
	if b.obs != nil {
		b.obs.Spawned(time.Since(t0))
	}
	return p, fds.stdin, nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			_ = f.Close() // a pipe end; nothing to flush
		}
	}
}

// localRedirect finishes a script whose head is a local redirect. Nothing
// of its response reaches the client: the router serves Location instead.
// Like Apache's mod_cgi, junction reads and drops the rest of the output
// and lets the script run to its end, since a script may print the
// redirect first and do its work after (a POST handler writing to a
// database); its body keeps flowing to stdin meanwhile. Timeout and the
// client going away still end it, and so does too much output.
func (b *Backend) localRedirect(r *http.Request, ctx context.Context, s script, p *proc, br *bufio.Reader, f *feeder, location string) error {
	n, derr := io.Copy(io.Discard, io.LimitReader(br, maxRedirectDiscard+1))
	end := endExit
	if derr != nil || n > maxRedirectDiscard {
		// A read error means the script exited and something it started
		// holds stdout past grace.
		end = endKill
	}
	ferr := b.finish(p, end, f)
	switch {
	case r.Context().Err() != nil:
		return fmt.Errorf("cgi: %s: %w", s.Name, r.Context().Err())
	case context.Cause(ctx) == errTimeout:
		// Its work was cut short: the redirect target would claim
		// success.
		b.log.Warn("cgi: script timed out after a local redirect", "script", s.Name, "timeout", b.timeout)
		return &backends.Error{Status: http.StatusGatewayTimeout, Err: fmt.Errorf("cgi: %s: %w after %v", s.Name, errTimeout, b.timeout)}
	case errors.Is(ferr, errShortBody):
		return &backends.Error{Status: http.StatusBadRequest, Err: ferr}
	case n > maxRedirectDiscard:
		b.log.Warn("cgi: script killed for writing too much after a local redirect", "script", s.Name, "limit", maxRedirectDiscard)
		return &backends.Error{Status: http.StatusBadGateway,
			Err: fmt.Errorf("cgi: %s: more than %d bytes of output after a local redirect", s.Name, maxRedirectDiscard)}
	}
	return &backends.LocalRedirect{Location: location}
}

// ending says how finish ends a script.
type ending int

const (
	// endKill kills the group at once: the response failed.
	endKill ending = iota
	// endGrace waits grace for the script to exit after its output
	// ended, then kills the group.
	endGrace
	// endExit waits for the script to exit by itself; Timeout and the
	// client going away still end it (run's context.AfterFunc).
	endExit
)

// finish ends the script as end says and waits for it and its stderr
// reader, then stops feeding its stdin. It returns the request body error.
func (b *Backend) finish(p *proc, end ending, f *feeder) error {
	if end == endKill {
		_ = p.signal(syscall.SIGKILL) // ErrProcessDone: already gone
	}
	if !p.settle() {
		if end == endGrace {
			t := time.NewTimer(b.grace)
			select {
			case <-p.done:
			case <-t.C:
				_ = p.signal(syscall.SIGKILL)
			}
			t.Stop()
		}
		<-p.done
	}
	b.observeExit(p.status)
	_ = p.stdout.Close() // read end; closing cannot fail meaningfully
	<-p.stderrDone
	if f == nil {
		return nil
	}
	return f.stop()
}

// headError turns a failure before any output into the error Serve returns.
func (b *Backend) headError(r *http.Request, ctx context.Context, s script, p *proc, err, feedErr error) error {
	switch {
	case r.Context().Err() != nil:
		return fmt.Errorf("cgi: %s: %w", s.Name, r.Context().Err())
	case context.Cause(ctx) == errTimeout:
		return &backends.Error{Status: http.StatusGatewayTimeout, Err: fmt.Errorf("cgi: %s: %w after %v", s.Name, errTimeout, b.timeout)}
	case errors.Is(feedErr, errShortBody):
		return &backends.Error{Status: http.StatusBadRequest, Err: feedErr}
	case errors.Is(err, cgiresp.ErrNoHead):
		b.log.Warn("cgi: script wrote no output", "script", s.Name, "status", exitStatus(p.status))
		return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("cgi: %s: %w (%s)", s.Name, err, exitStatus(p.status))}
	}
	b.log.Warn("cgi: bad response head", "script", s.Name, "err", err, "status", exitStatus(p.status))
	return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("cgi: %s: %w", s.Name, err)}
}

// readable reports whether a read of f would not block: data or the end
// of the output is waiting. It polls without a timeout and leaves f in
// the runtime poller (f.Fd would make it blocking).
func readable(f *os.File) bool {
	sc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ready := false
	_ = sc.Control(func(fd uintptr) { // an error means "not known ready": flush
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		ready = err == nil && n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0
	})
	return ready
}

// feeder writes exactly n bytes of the request body to the script's stdin.
// A body that ends short kills the script before its stdin closes, so it
// never sees a truncated body as complete. A script that stops reading is
// its business.
//
// Once the script is gone, stop ends the feeder without touching the front
// connection. A feeder blocked in body.Read cannot be interrupted from
// here: setting a read deadline on the front connection would poison it
// (net/http, the plain-HTTP front end, then drops a keep-alive connection
// and the other codecs do not support it at all). So stop closes stdin and
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

// maxStderrLine bounds one logged stderr line.
const maxStderrLine = 1024

// stderrLog logs a script's stderr line by line; a line longer than
// maxStderrLine is logged cut (truncated=true) and the rest of it dropped.
// It keeps an unfinished line between drain calls.
type stderrLog struct {
	log    *slog.Logger
	script string
	buf    []byte // an unfinished line; allocated at the first output
	n      int
	skip   bool // dropping the rest of a line logged cut
}

// drain reads r until it ends (nil) or fails (the error; errWouldBlock
// when a non-blocking r has nothing yet). The unfinished line is logged
// when r ends or fails for good.
func (l *stderrLog) drain(r io.Reader) error {
	var first [64]byte // most scripts write nothing: a read finds the end
	for {
		var m int
		var err error
		if l.buf == nil {
			m, err = r.Read(first[:])
			if m > 0 {
				l.buf = make([]byte, maxStderrLine)
				l.n = copy(l.buf, first[:m])
			}
		} else {
			m, err = r.Read(l.buf[l.n:])
			l.n += m
		}
		l.lines()
		if err != nil {
			if !errors.Is(err, errWouldBlock) {
				if l.n > 0 && !l.skip {
					l.emit(l.buf[:l.n], false)
				}
				l.n = 0
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// lines logs the complete lines in buf and keeps the rest.
func (l *stderrLog) lines() {
	start := 0
	for i := 0; i < l.n; i++ {
		if l.buf[i] != '\n' {
			continue
		}
		if !l.skip {
			l.emit(l.buf[start:i], false)
		}
		l.skip = false
		start = i + 1
	}
	l.n = copy(l.buf, l.buf[start:l.n])
	if l.n == len(l.buf) && l.n > 0 {
		if !l.skip {
			l.emit(l.buf, true)
		}
		l.skip = true
		l.n = 0
	}
}

func (l *stderrLog) emit(line []byte, truncated bool) {
	l.log.Warn("cgi: script stderr", "script", l.script, "line", string(line), "truncated", truncated)
}

// observeExit tells the observer how the script ended.
func (b *Backend) observeExit(ws syscall.WaitStatus) {
	switch {
	case b.obs == nil:
	case ws.Exited():
		b.obs.Exited(ws.ExitStatus())
	case ws.Signaled():
		b.obs.Signaled(ws.Signal().String())
	}
}
