package cgi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scriptedReader returns its steps one Read at a time.
type scriptedReader struct {
	steps []readStep
}

type readStep struct {
	data string
	err  error
}

func (r *scriptedReader) Read(b []byte) (int, error) {
	if len(r.steps) == 0 {
		return 0, io.EOF
	}
	s := &r.steps[0]
	n := copy(b, s.data)
	s.data = s.data[n:]
	if s.data != "" {
		return n, nil // the rest on the next Read
	}
	err := s.err
	r.steps = r.steps[1:]
	return n, err
}

func TestStderrLogDrain(t *testing.T) {
	long := strings.Repeat("L", maxStderrLine+300)
	tests := []struct {
		name string
		// calls are separate drain calls, as the fast path and then a
		// watcher make them.
		calls [][]readStep
		want  []string // "line" or "line (cut)"
		errs  []error  // what each drain call returns
	}{
		{
			name:  "nothing",
			calls: [][]readStep{{{err: io.EOF}}},
			errs:  []error{nil},
		},
		{
			name:  "lines and an unterminated last one",
			calls: [][]readStep{{{data: "one\ntwo\nthree"}, {err: io.EOF}}},
			want:  []string{"one", "two", "three"},
			errs:  []error{nil},
		},
		{
			name:  "line split across a would-block",
			calls: [][]readStep{{{data: "fir", err: errWouldBlock}}, {{data: "st\nsecond\n", err: io.EOF}}},
			want:  []string{"first", "second"},
			errs:  []error{errWouldBlock, nil},
		},
		{
			name:  "over-long line cut once, rest dropped up to its newline",
			calls: [][]readStep{{{data: long[:700], err: errWouldBlock}}, {{data: long[700:] + "\nafter\n"}, {err: io.EOF}}},
			want:  []string{long[:maxStderrLine] + " (cut)", "after"},
			errs:  []error{errWouldBlock, nil},
		},
		{
			name:  "line of exactly the limit is cut",
			calls: [][]readStep{{{data: long[:maxStderrLine] + "\nx\n", err: io.EOF}}},
			want:  []string{long[:maxStderrLine] + " (cut)", "x"},
			errs:  []error{nil},
		},
		{
			name:  "failure logs the unfinished line",
			calls: [][]readStep{{{data: "partial", err: syscall.EIO}}},
			want:  []string{"partial"},
			errs:  []error{syscall.EIO},
		},
		{
			name:  "small first read then a line longer than it",
			calls: [][]readStep{{{data: "a\n" + strings.Repeat("b", 200) + "\n", err: io.EOF}}},
			want:  []string{"a", strings.Repeat("b", 200)},
			errs:  []error{nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			h := &recordHandler{record: func(r slog.Record) {
				var line string
				var cut bool
				r.Attrs(func(a slog.Attr) bool {
					switch a.Key {
					case "line":
						line = a.Value.String()
					case "truncated":
						cut = a.Value.Bool()
					}
					return true
				})
				if cut {
					line += " (cut)"
				}
				got = append(got, line)
			}}
			l := stderrLog{log: slog.New(h), script: "s"}
			for i, steps := range tt.calls {
				err := l.drain(&scriptedReader{steps: steps})
				if !errors.Is(err, tt.errs[i]) {
					t.Errorf("drain call %d = %v, want %v", i, err, tt.errs[i])
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("logged %q\nwant   %q", got, tt.want)
			}
		})
	}
}

// recordHandler hands every record to record.
type recordHandler struct{ record func(slog.Record) }

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.record(r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// TestStderrFloodBeforeOutput: a script that fills its stderr pipe before
// writing any stdout is read by a watcher while it runs, so it finishes.
func TestStderrFloodBeforeOutput(t *testing.T) {
	checkLeaks(t)
	b, logs := newBackend(t, nil)
	rec := httptest.NewRecorder()
	if err := b.Serve(rec, request("GET", "/cgi-bin/env.cgi", nil, "stderr-flood")); err != nil {
		t.Fatal(err)
	}
	if rec.Body.String() != "flooded" {
		t.Errorf("body %q", rec.Body)
	}
	want := (256 << 10) / 100
	if n := strings.Count(logs.String(), "cgi: script stderr"); n != want {
		t.Errorf("%d stderr lines logged, want %d", n, want)
	}
}

// TestStderrHeldOpen: something that left the process group keeps only
// stderr open. The script is still reaped at once, what is written to
// stderr within grace is logged, and the request ends after grace.
func TestStderrHeldOpen(t *testing.T) {
	checkLeaks(t)
	b, logs := newBackend(t, nil)
	b.grace = 400 * time.Millisecond
	pidfile := filepath.Join(t.TempDir(), "pid")
	r := request("GET", "/cgi-bin/env.cgi", nil, "stderr-escape")
	r.Header.Set("X-Pidfile", pidfile)
	rec := httptest.NewRecorder()
	start := time.Now()
	if err := b.Serve(rec, r); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	pids := readPids(t, pidfile)
	_ = syscall.Kill(pids[1], syscall.SIGKILL) // it left our group on purpose
	if rec.Body.String() != "done" {
		t.Errorf("body %q", rec.Body)
	}
	if took > 5*time.Second {
		t.Errorf("request took %v with grace %v", took, b.grace)
	}
	if !strings.Contains(logs.String(), "late words") {
		t.Errorf("stderr written within grace not logged:\n%s", logs)
	}
	if !groupGone(pids[0]) {
		t.Errorf("process group %d still alive", pids[0])
	}
}
