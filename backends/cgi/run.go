package cgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgiresp"
)

// bufSize is the stdout buffer: one pipe read fills at most this much before
// it is written and flushed.
const bufSize = 32 << 10

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}

	errTimeout = errors.New("cgi: script timed out")
)

// run starts the script and relays its response. body, when not nil, is
// the spooled request body, the script's stdin.
func (b *Backend) run(w http.ResponseWriter, r *http.Request, s script, st *settings, body *os.File) error {
	ctx, cancel := context.WithTimeoutCause(r.Context(), st.timeout, errTimeout)
	defer cancel()
	// Before cancel (deferred earlier, so run later) changes the cause.
	defer func() {
		if context.Cause(ctx) == errTimeout && r.Context().Err() == nil {
			b.timedOut()
		}
	}()

	p, stdin, err := b.start(r, s, st, body)
	if err != nil {
		return err
	}
	// On timeout, or when the client goes away before its response is
	// complete: SIGTERM to the group, and SIGKILL if the script is still
	// there after grace. Its exit then kills the rest of the group and
	// frees its slot (proc.reap), whatever the front connection does. A
	// response that started cannot end well after a timeout: its writes
	// are made to fail, so that a write blocked on a reader that stopped
	// reading returns too. A client that leaves once it has every byte
	// (nginx closes the connection then) ends nothing.
	bw := &bodyWriter{ResponseWriter: w, left: -1, ctx: ctx, p: p}
	watch := &bw.watch
	watch.start(ctx, bw.requestEnded)
	defer watch.stop()
	var f *feeder
	if stdin != nil {
		f = &feeder{p: p, stdin: stdin, body: r.Body, n: r.ContentLength, done: make(chan struct{})}
		go f.run()
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(p.stdout)
	detached := false
	defer func() {
		if !detached {
			putReader(br)
		}
	}()

	resp, err := cgiresp.Parse(br, b.limits)
	if err == nil && resp.LocalRedirect != "" && !s.nph {
		return clientFailure(r, s, b.localRedirect(r, ctx, s, p, br, f, resp.LocalRedirect))
	}
	if err != nil {
		end := endKill
		if errors.Is(err, cgiresp.ErrNoHead) {
			end = endGrace
		}
		ferr := b.finish(p, end, f)
		return b.headError(r, ctx, s, p, err, ferr)
	}
	bw.started.Store(true)
	resp.WriteHead(w)
	if bw.left = resp.ContentLength; bw.left == 0 {
		bw.complete.Store(true)
	}
	// Once the script has exited the rest is already in the pipe: it is
	// written without flushes and the codec sends it when the response ends.
	werr, rerr := resp.CopyDeclared(bw, br, func() bool { return p.exited.Load() || readable(p.stdout) })
	complete := werr == nil && rerr == nil
	// The response is complete (its Content-Length relayed, or the end of
	// the output): from here the client leaving says nothing about the
	// script, which may go on working (logging, sending mail) and is
	// bounded by its timeout alone. Unless it is still being fed its
	// body, the request ends now and the script is finished in the
	// background.
	if complete && f.fed() && (watch.stop() || !bw.ended.Load()) {
		deadline, _ := ctx.Deadline()
		// Short of its declared length the copy ended at the end of the
		// output.
		detached = b.detach(r, s, p, resp, br, f, deadline, bw.left != 0)
		return nil
	}
	if complete && bw.left == 0 {
		rerr = resp.End(br)
	}
	end := endGrace
	if werr != nil || rerr != nil {
		end = endKill
	}
	ferr := b.finish(p, end, f)
	b.logEnd(s, context.Cause(ctx) == errTimeout && r.Context().Err() == nil, werr, rerr, ferr, p)
	return nil
}

// logEnd logs how a script whose response started ended, when it did not
// end well.
func (b *Backend) logEnd(s script, timedOut bool, werr, rerr, ferr error, p *proc) {
	switch {
	case timedOut:
		b.log.Warn("cgi: script timed out after its response started", "script", s.Name, "timeout", p.timeout)
	case werr != nil:
		b.log.Info("cgi: client went away", "script", s.Name, "err", werr)
	case errors.Is(rerr, os.ErrDeadlineExceeded):
		b.log.Warn("cgi: output still held open after the script exited", "script", s.Name)
	case errors.Is(rerr, cgiresp.ErrOverrun):
		b.log.Warn("cgi: script killed for writing more than its Content-Length", "script", s.Name)
	case rerr != nil:
		b.log.Warn("cgi: reading script output", "script", s.Name, "err", rerr)
	case ferr != nil:
		b.log.Warn("cgi: request body", "script", s.Name, "err", ferr)
	case limitSignal(p.status) != "":
		b.log.Warn("cgi: script killed by its limit after its response started; the response is cut short", "script", s.Name,
			"limit", limitSignal(p.status), "status", exitStatus(p.status))
	case p.status != 0:
		b.log.Warn("cgi: script failed after its response started", "script", s.Name, "status", exitStatus(p.status))
	}
}

// timedOut counts a script that ran past its timeout.
func (b *Backend) timedOut() {
	b.timeouts.Add(1)
	if b.obs != nil {
		b.obs.TimedOut()
	}
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

// bodyWriter is the ResponseWriter the body is copied through: it knows
// when the declared length has been handed to the codec, before the
// write that completes it, so that a client closing as soon as it has the
// last byte finds the response complete.
type bodyWriter struct {
	http.ResponseWriter
	left     int64       // bytes of the declared length still to write; -1 unknown
	started  atomic.Bool // the head was written
	complete atomic.Bool // the declared length was written (or is being)
	ended    atomic.Bool // the request's end (timeout, client gone) ended the script

	ctx   context.Context // the request's, with the script's timeout
	p     *proc
	watch ctxWatch // runs requestEnded when ctx ends
}

// requestEnded ends the script when the request ends (its timeout, or a
// client gone before the response was complete), and makes the writes of
// a response that started after a timeout fail.
func (w *bodyWriter) requestEnded() {
	defer w.watch.running.Done()
	if context.Cause(w.ctx) != errTimeout && w.complete.Load() {
		return
	}
	w.ended.Store(true)
	w.p.terminate()
	if w.started.Load() && context.Cause(w.ctx) == errTimeout {
		abortResponse(w.ResponseWriter)
	}
}

func (w *bodyWriter) Write(p []byte) (int, error) {
	if w.left >= 0 && int64(len(p)) >= w.left {
		w.complete.Store(true)
	}
	n, err := w.ResponseWriter.Write(p)
	if w.left >= 0 {
		w.left -= int64(n)
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the codec's writer.
func (w *bodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ctxWatch runs a function when a context ends, until stopped. It lives
// inside the request's bodyWriter: no allocation of its own.
type ctxWatch struct {
	stopFn  func() bool
	running sync.WaitGroup // the function, until it has returned
	once    sync.Once
	stopped bool
}

// start arranges for f to run when ctx ends; f must call cw.running.Done
// when it returns.
func (cw *ctxWatch) start(ctx context.Context, f func()) {
	cw.running.Add(1)
	cw.stopFn = context.AfterFunc(ctx, f)
}

// stop reports whether the function never ran, and never will; when it
// did, stop waits for it to return first. Later calls report the same.
func (cw *ctxWatch) stop() bool {
	cw.once.Do(func() {
		cw.stopped = cw.stopFn()
		if cw.stopped {
			cw.running.Done() // f will never run to do it
		} else {
			cw.running.Wait()
		}
	})
	return cw.stopped
}

// start spawns the script in its own process group, under st's limits.
// body, when not nil, is its stdin; otherwise a body of r is fed through
// the stdin pipe start returns.
func (b *Backend) start(r *http.Request, s script, st *settings, body *os.File) (*proc, *os.File, error) {
	in, err := devNull()
	if err != nil {
		return nil, nil, fmt.Errorf("cgi: %s: %w", b.name, err)
	}
	if body != nil {
		in = int(body.Fd())
	}
	fds, err := newPipes(r.ContentLength > 0 && body == nil, in)
	if err != nil {
		return nil, nil, err
	}
	argv, cred := s.argv, b.cred
	if argv == nil {
		argv = []string{s.Filename}
	}
	if s.cred != nil {
		cred = s.cred
	}
	t0 := time.Now()
	p, err := spawn(argv, filepath.Dir(s.Filename), b.env.Env(r, s.Script), cred, st.lim, &b.execScans, fds, b.grace,
		stderrLog{log: b.log, script: s.Name}, st.releaseFn)
	fds.closeChild()
	if err != nil {
		st.release()
		fds.closeParent()
		return nil, nil, fmt.Errorf("cgi: %s: starting %s: %w", b.name, s.Filename, &os.PathError{Op: "fork/exec", Path: argv[0], Err: err})
	}
	if b.obs != nil {
		b.obs.Spawned(time.Since(t0))
	}
	p.timeout = st.timeout
	return p, fds.stdin, nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			_ = f.Close() // a pipe end; nothing to flush
		}
	}
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
		return backends.ContextError(r.Context(), "cgi: "+s.Name)
	case context.Cause(ctx) == errTimeout:
		return &backends.Error{Status: http.StatusGatewayTimeout, Err: fmt.Errorf("cgi: %s: %w after %v", s.Name, errTimeout, p.timeout)}
	case errors.Is(feedErr, errShortBody):
		return &backends.ClientError{Err: fmt.Errorf("cgi: %s: %w", s.Name, feedErr)}
	case errors.Is(err, cgiresp.ErrNoHead) && limitSignal(p.status) != "":
		b.log.Warn("cgi: script killed by its limit before any output", "script", s.Name, "limit", limitSignal(p.status), "status", exitStatus(p.status))
		return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("cgi: %s: %w (%s)", s.Name, err, exitStatus(p.status))}
	case errors.Is(err, cgiresp.ErrNoHead):
		b.log.Warn("cgi: script wrote no output", "script", s.Name, "status", exitStatus(p.status))
		return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("cgi: %s: %w (%s)", s.Name, err, exitStatus(p.status))}
	}
	b.log.Warn("cgi: bad response head", "script", s.Name, "err", err, "status", exitStatus(p.status))
	return &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("cgi: %s: %w", s.Name, err)}
}

// clientFailure turns what localRedirect reports about the client into
// the client's error: a request whose client went away, or whose body
// ended early, says nothing about the script.
func clientFailure(r *http.Request, s script, err error) error {
	var be *backends.Error
	switch {
	case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
		return backends.ContextError(r.Context(), "cgi: "+s.Name)
	case errors.As(err, &be) && errors.Is(be.Err, errShortBody):
		return &backends.ClientError{Err: fmt.Errorf("cgi: %s: %w", s.Name, be.Err)}
	}
	return err
}

// abortResponse makes the writes of a response that cannot end well fail
// at once, where the codec's writer supports write deadlines (net/http's
// does). Elsewhere the listener's write_timeout ends a blocked write.
func abortResponse(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(aLongTimeAgo) // ErrNotSupported: see above
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

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

// observeExit tells the observer how the script ended.
func (b *Backend) observeExit(ws syscall.WaitStatus) {
	switch {
	case b.obs == nil:
	case ws.Exited():
		b.obs.Exited(ws.ExitStatus())
	case ws.Signaled():
		b.obs.Signaled(signalName(ws.Signal()))
	}
}
