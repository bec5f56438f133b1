package cgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/junction-gw/junction/backends/internal/cgiresp"
)

// detach finishes a script whose response is complete, after the request:
// a script may answer first and work after (log, send mail), and nginx or
// an HTTP client that closed its connection once it had every byte must
// not end that work. The script's lifetime no longer follows the request,
// only its deadline (the request's context without its cancellation, and
// the same timeout); it keeps its slot until it exits.
//
// Most scripts exit right after their last byte: one whose output ends
// (ended: it has) before its watchers would start, or that exits within
// watchDelay, is finished here, on the serving goroutine, as before.
// Otherwise the Backend finishes it in the background (see Wait) and
// detach reports that br belongs to that goroutine now. Output beyond the
// declared length kills the script (cgiresp.ErrOverrun), here or there.
func (b *Backend) detach(r *http.Request, s script, p *proc, resp *cgiresp.Response, br *bufio.Reader, f *feeder, deadline time.Time, ended bool) bool {
	if !ended {
		var err error
		ended, err = awaitEnd(p, resp, br)
		if err != nil {
			ferr := b.finish(p, endKill, f)
			b.logEnd(s, false, nil, err, ferr, p)
			return false
		}
	}
	if p.settle() || exitsWithin(p, watchDelay) {
		ferr := b.finish(p, endExit, f) // reaped already: returns at once
		b.logEnd(s, false, nil, nil, ferr, p)
		return false
	}
	ctx, cancel := context.WithDeadlineCause(context.WithoutCancel(r.Context()), deadline, errTimeout)
	stop := context.AfterFunc(ctx, p.terminate)
	b.bgStart()
	go func() {
		defer b.bgDone()
		defer putReader(br)
		var rerr error
		if !ended {
			rerr = resp.End(br)
		}
		end := endExit
		if rerr != nil {
			end = endKill
		}
		ferr := b.finish(p, end, f)
		timedOut := !stop()
		cancel()
		if timedOut {
			b.timedOut()
			b.log.Warn("cgi: script timed out after its response", "script", s.Name, "timeout", p.timeout)
			return
		}
		b.logEnd(s, false, nil, rerr, ferr, p)
	}()
	return true
}

// awaitEnd waits for the end of the output after a complete response of
// declared length, until the script's watchers start (watchDelay after
// the spawn), and reports whether it came. More output is ErrOverrun.
// Until the watchers start nothing else sets stdout's deadline, and from
// the moment the script is reaped (exited is set before reap's deadline)
// the deadline reap wants is restored.
func awaitEnd(p *proc, resp *cgiresp.Response, br *bufio.Reader) (bool, error) {
	if !time.Now().Before(p.watchAt) || p.stdout.SetReadDeadline(p.watchAt) != nil {
		return false, nil
	}
	err := resp.End(br)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err == nil, err
	}
	_ = p.stdout.SetReadDeadline(time.Time{}) // cannot fail: stdout is open
	if p.exited.Load() {
		_ = p.stdout.SetReadDeadline(time.Now().Add(p.grace))
	}
	return false, nil
}

// exitsWithin reports whether the script, left to the watchers by settle,
// is reaped within d.
func exitsWithin(p *proc, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// bgStart counts a script finished in the background.
func (b *Backend) bgStart() {
	b.bgMu.Lock()
	b.bgN++
	b.bgMu.Unlock()
}

// bgDone counts one less and wakes Wait when none is left.
func (b *Backend) bgDone() {
	b.bgMu.Lock()
	defer b.bgMu.Unlock()
	if b.bgN--; b.bgN == 0 && b.bgIdle != nil {
		close(b.bgIdle)
		b.bgIdle = nil
	}
}

// Wait blocks until no script whose response is complete is still
// running after its request (each is bounded by Timeout, plus the grace
// its SIGKILL waits for), or until ctx ends. Call it when shutting down,
// after the last request: a script still working then would otherwise
// outlive junction unbounded.
func (b *Backend) Wait(ctx context.Context) error {
	b.bgMu.Lock()
	if b.bgN == 0 {
		b.bgMu.Unlock()
		return nil
	}
	if b.bgIdle == nil {
		b.bgIdle = make(chan struct{})
	}
	idle := b.bgIdle
	b.bgMu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cgi: %s: waiting for scripts working after their response: %w", b.name, ctx.Err())
	}
}
