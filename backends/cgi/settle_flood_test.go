package cgi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// countHandler counts log records and writes them to out.
type countHandler struct {
	n   *atomic.Int64
	out slog.Handler
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(ctx context.Context, r slog.Record) error {
	h.n.Add(1)
	// As production logging does: one write(2) per record.
	return h.out.Handle(ctx, r)
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// slowWriter makes the serving goroutine reach settle only after the
// script has surely exited (the fast path), well within watchDelay.
type slowWriter struct{ *httptest.ResponseRecorder }

func (w slowWriter) Write(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	return w.ResponseRecorder.Write(p)
}

// TestSettleGroupMemberFloodingStderr: a script leaves a process in its
// own group that writes stderr faster than junction logs it, and exits.
// The group is killed as soon as the script is found exited, before
// stderr is drained, and the serving goroutine reads at most a pipe's
// worth: the request ends promptly instead of logging until the timeout.
func TestSettleGroupMemberFloodingStderr(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nyes >&2 &\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok'\n"
	if err := os.WriteFile(filepath.Join(dir, "flood.cgi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var lines atomic.Int64
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	const timeout = 3 * time.Second
	b, _ := newBackend(t, func(o *Options) {
		o.Root = dir
		o.Timeout = timeout
		o.Logger = slog.New(countHandler{&lines, slog.NewTextHandler(null, nil)})
	})
	b.grace = 200 * time.Millisecond
	rec := httptest.NewRecorder()
	start := time.Now()
	err = b.Serve(slowWriter{rec}, httptest.NewRequest(http.MethodGet, "/cgi-bin/flood.cgi", nil))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Body.String() != "ok" {
		t.Errorf("body %q", rec.Body)
	}
	t.Logf("took %v, %d stderr lines", took, lines.Load())
	if took > timeout/2 {
		t.Errorf("request took %v (timeout %v, grace %v): the script's group outlived its exit; %d stderr lines logged",
			took, timeout, b.grace, lines.Load())
	}
}
