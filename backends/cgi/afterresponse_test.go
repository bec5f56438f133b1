package cgi

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/internal/syncbuf"
)

// afterResponseModes are child behaviours (see child in main_test.go) of
// scripts that keep working after their response.
var afterResponseModes = map[string]func() int{
	"work-after":        func() int { return workAfter(false) },
	"work-after-closed": func() int { return workAfter(true) },
}

func init() {
	if os.Getenv(childEnv) != "1" {
		return
	}
	if f, ok := afterResponseModes[os.Getenv("HTTP_X_MODE")]; ok {
		os.Exit(f())
	}
}

// workAfter answers "ok" with Content-Length: 2, or without a length and
// closes stdout, then works: it waits for HTTP_X_GATE to exist (or 1s
// without one) and writes HTTP_X_MARKER, like a script that logs or sends
// mail after answering.
func workAfter(closeStdout bool) int {
	if closeStdout {
		fmt.Fprint(os.Stdout, "Content-Type: text/plain\n\nok")
		os.Stdout.Close()
	} else {
		fmt.Fprint(os.Stdout, "Content-Type: text/plain\nContent-Length: 2\n\nok")
	}
	if gate := os.Getenv("HTTP_X_GATE"); gate != "" {
		for end := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(gate); err == nil {
				break
			}
			if time.Now().After(end) {
				return 1
			}
		}
	} else {
		time.Sleep(time.Second)
	}
	if os.WriteFile(os.Getenv("HTTP_X_MARKER"), []byte("done"), 0o644) != nil {
		return 1
	}
	return 0
}

// closingWriter is a client that closes its connection once it has read
// want body bytes, as nginx does after a response of known length.
type closingWriter struct {
	*httptest.ResponseRecorder
	want   int
	cancel context.CancelFunc
}

func (w *closingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseRecorder.Write(p)
	if w.Body.Len() >= w.want {
		w.cancel()
	}
	return n, err
}

// waitFile waits for path to exist.
func waitFile(path string, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return true
		}
	}
	return false
}

// TestWorkAfterResponse: a script that has given its whole response (its
// Content-Length is satisfied, or it closed stdout) and goes on working is
// not killed when the client then closes its connection, nor after grace:
// Serve returns, and the script runs to its end in the background, keeping
// its max_concurrent slot until it exits.
func TestWorkAfterResponse(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		mode string
		// closeAt is when the client closes its connection: at once
		// after the last byte of a response of known length (nginx); a
		// response without one ends when the codec ends it, after Serve.
		closeAt int
	}{
		{"work-after", 2},
		{"work-after-closed", 1 << 30},
	}
	for _, tt := range tests {
		mode := tt.mode
		t.Run(mode, func(t *testing.T) {
			b, _ := newBackend(t, func(o *Options) { o.MaxConcurrent = 1 })
			b.grace = 200 * time.Millisecond // shorter than the work: grace does not bound it
			dir := t.TempDir()
			gate, marker := filepath.Join(dir, "gate"), filepath.Join(dir, "marker")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := request("GET", "/cgi-bin/env.cgi", nil, mode).WithContext(ctx)
			r.Header.Set("X-Gate", gate)
			r.Header.Set("X-Marker", marker)
			w := &closingWriter{ResponseRecorder: httptest.NewRecorder(), want: tt.closeAt, cancel: cancel}
			done := make(chan error, 1)
			go func() { done <- b.Serve(w, r) }()
			select {
			case err := <-done:
				if err != nil || w.Body.String() != "ok" {
					t.Fatalf("Serve = %v, body %q; want nil and ok", err, w.Body)
				}
			case <-time.After(10 * time.Second):
				// Let the script finish so that the test ends.
				if err := os.WriteFile(gate, nil, 0o644); err != nil {
					t.Error(err)
				}
				<-done
				t.Fatal("Serve waited for the script's work after its response")
			}
			if st := b.Stats(); st.InUse != 1 {
				t.Errorf("while the script works: %d slots in use, want 1", st.InUse)
			}
			if err := os.WriteFile(gate, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if !waitFile(marker, 10*time.Second) {
				t.Fatal("the script was killed after its response: its work never finished")
			}
			// The slot is free once it has exited.
			ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if st := b.Stats(); st.InUse != 0 {
				t.Errorf("after the script exited: %d slots in use, want 0", st.InUse)
			}
			rec := httptest.NewRecorder()
			if err := b.Serve(rec, request("GET", "/cgi-bin/env.cgi", nil, "nostatus")); err != nil {
				t.Errorf("after the script exited: %v", err)
			}
		})
	}
}

// TestWorkAfterResponseBounded: a script working after its response is
// still bounded by its timeout, and its slot is free within timeout +
// grace.
func TestWorkAfterResponseBounded(t *testing.T) {
	checkLeaks(t)
	obs := &fakeObserver{}
	// Long enough for the script to answer on a loaded machine (and under
	// the race detector).
	const timeout = 2 * time.Second
	b, logs := newBackend(t, func(o *Options) {
		o.Timeout, o.Observer = timeout, obs
		o.MaxConcurrent, o.MaxQueue, o.QueueTimeout = 1, 1, timeout+5*time.Second
	})
	b.grace = 200 * time.Millisecond
	dir := t.TempDir()
	r := request("GET", "/cgi-bin/env.cgi", nil, "work-after")
	r.Header.Set("X-Gate", filepath.Join(dir, "never"))
	r.Header.Set("X-Marker", filepath.Join(dir, "marker"))
	rec := httptest.NewRecorder()
	if err := b.Serve(rec, r); err != nil || rec.Body.String() != "ok" {
		t.Fatalf("Serve = %v, body %q", err, rec.Body)
	}
	start := time.Now()
	rec = httptest.NewRecorder()
	if err := b.Serve(rec, request("GET", "/cgi-bin/env.cgi", nil, "nostatus")); err != nil {
		t.Fatalf("second request: %v", err)
	}
	if took := time.Since(start); took > timeout+b.grace+3*time.Second {
		t.Errorf("slot free after %v, want within the timeout and grace", took)
	}
	if st := b.Stats(); st.Timeouts != 1 {
		t.Errorf("timeouts = %d, want 1", st.Timeouts)
	}
	obs.mu.Lock()
	timedOut := obs.timedOut
	obs.mu.Unlock()
	if timedOut != 1 {
		t.Errorf("observer saw %d timeouts, want 1", timedOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "marker")); err == nil {
		t.Error("the script's work finished past its timeout")
	}
	if !waitLog(logs, "timed out after its response") {
		t.Errorf("no log of the timeout:\n%s", logs)
	}
}

// waitLog waits for logs to contain s.
func waitLog(logs *syncbuf.Buffer, s string) bool {
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(logs.String(), s) {
			return true
		}
	}
	return false
}
