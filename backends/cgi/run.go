package cgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/cgiresp"
)

// bufSize is the stdout buffer: one pipe read fills at most this much before
// it is written and flushed.
const bufSize = 32 << 10

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}
	stdinPool  = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

	errTimeout   = errors.New("cgi: script timed out")
	errShortBody = errors.New("cgi: request body ended early")
)

// hopByHop are response fields a script may not set: the codec frames the
// response itself.
var hopByHop = []string{"Connection", "Keep-Alive", "Transfer-Encoding"}

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
	// kills the rest of the group (proc.wait).
	stop := context.AfterFunc(ctx, p.terminate)
	defer stop()
	stderrDone := make(chan struct{})
	go b.logStderr(p, s.Name, stderrDone)
	var feedErr chan error
	if stdin != nil {
		feedErr = make(chan error, 1)
		go func() { feedErr <- feed(p, stdin, r.Body, r.ContentLength) }()
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(pipeReader{p.stdout, p})
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()

	resp, err := cgiresp.Parse(br, b.limits)
	if err == nil && resp.LocalRedirect != "" && !s.nph {
		// Nothing of this response reaches the client.
		b.finish(w, p, true, stderrDone, feedErr)
		return &backends.LocalRedirect{Location: resp.LocalRedirect}
	}
	if err != nil {
		ferr := b.finish(w, p, !errors.Is(err, cgiresp.ErrNoHead), stderrDone, feedErr)
		return b.headError(r, ctx, s, p, err, ferr)
	}
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
	status := resp.Status
	if status == 0 {
		// An NPH script's local-looking Location goes to the client.
		status = http.StatusFound
	}
	w.WriteHeader(status)
	werr, rerr := copyBody(w, br, p)
	kill := werr != nil || rerr != nil
	ferr := b.finish(w, p, kill, stderrDone, feedErr)
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
	p, err := spawn(s.Filename, filepath.Dir(s.Filename), b.env.Env(r, s.Script), b.cred, fds, b.grace)
	fds.closeChild()
	if err != nil {
		fds.closeParent()
		return nil, nil, fmt.Errorf("cgi: %s: starting %s: %w", b.name, s.Filename, &os.PathError{Op: "fork/exec", Path: s.Filename, Err: err})
	}
	if b.obs != nil {
		b.obs.Spawned(time.Since(t0))
	}
	go p.wait()
	return p, fds.stdin, nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			_ = f.Close() // a pipe end; nothing to flush
		}
	}
}

// finish ends the script (at once when kill is set, else after grace) and
// waits for it and the goroutines serving it. It returns the stdin error.
func (b *Backend) finish(w http.ResponseWriter, p *proc, kill bool, stderrDone chan struct{}, feedErr chan error) error {
	if kill {
		_ = p.signal(syscall.SIGKILL) // ErrProcessDone: already gone
	} else {
		t := time.NewTimer(b.grace)
		select {
		case <-p.done:
		case <-t.C:
			_ = p.signal(syscall.SIGKILL)
		}
		t.Stop()
	}
	<-p.done
	b.observeExit(p.status)
	_ = p.stdout.Close() // read end; closing cannot fail meaningfully
	<-stderrDone
	if feedErr == nil {
		return nil
	}
	select {
	case err := <-feedErr:
		return err
	default:
	}
	// The feeder is blocked reading the request body for a script that is
	// gone: interrupt the read where the front end supports it.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now()) // ErrNotSupported: wait for the codec's own deadline
	return <-feedErr
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

// copyBody relays the body, flushing after every read from the pipe while
// the script runs, so streaming scripts stream; a read returns whatever is
// available (up to 32 KiB), so a burst of output is one write and one
// flush. Once the script has exited the rest is already in the pipe: it is
// written without flushes and the codec sends it when the response ends.
func copyBody(w http.ResponseWriter, br *bufio.Reader, p *proc) (werr, rerr error) {
	var rc *http.ResponseController
	for {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					return nil, nil
				}
				return nil, err
			}
		}
		chunk, _ := br.Peek(br.Buffered()) // cannot fail: the bytes are buffered
		if _, err := w.Write(chunk); err != nil {
			return err, nil
		}
		_, _ = br.Discard(len(chunk)) // cannot fail: the bytes are buffered
		if p.exited.Load() {
			continue
		}
		if rc == nil {
			rc = http.NewResponseController(w)
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err, nil
		}
	}
}

// feed writes exactly n bytes of body to the script's stdin. A body that
// ends short kills the script before its stdin closes, so it never sees a
// truncated body as complete. A script that stops reading is its business.
func feed(p *proc, stdin *os.File, body io.Reader, n int64) error {
	bp := stdinPool.Get().(*[]byte)
	defer stdinPool.Put(bp)
	buf := *bp
	for n > 0 {
		m, rerr := body.Read(buf[:min(int64(len(buf)), n)])
		if m > 0 {
			if _, werr := stdin.Write(buf[:m]); werr != nil {
				_ = stdin.Close() // the script closed its end
				return nil
			}
			n -= int64(m)
		}
		if rerr != nil && n > 0 {
			_ = p.signal(syscall.SIGKILL) // ErrProcessDone: it is gone anyway
			_ = stdin.Close()
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("%w (%d bytes missing): %w", errShortBody, n, rerr)
		}
	}
	return stdin.Close()
}

// maxStderrLine bounds one logged stderr line.
const maxStderrLine = 1024

// logStderr logs the script's stderr line by line until it closes.
func (b *Backend) logStderr(p *proc, name string, done chan struct{}) {
	defer close(done)
	defer p.stderr.Close()
	br := bufio.NewReaderSize(pipeReader{p.stderr, p}, maxStderrLine)
	skip := false // inside an over-long line already logged
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 && !skip {
			full := err == nil
			if full {
				line = line[:len(line)-1]
			}
			b.log.Warn("cgi: script stderr", "script", name, "line", string(line), "truncated", !full && errors.Is(err, bufio.ErrBufferFull))
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			skip = true
		case err != nil:
			return
		default:
			skip = false
		}
	}
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
