package app

import (
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/junction-gw/junction/cmd/junction/internal/metrics"
	"github.com/junction-gw/junction/config"
	"github.com/junction-gw/junction/internal/syncbuf"
)

// TestCGILogNamesBackendOnce checks that a cgi backend's log lines (a
// script's stderr here) name the backend once: the backend adds its name
// itself, so the app must not add it to the logger it passes.
func TestCGILogNamesBackendOnce(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "warn.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'something odd' >&2\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	reg := prometheus.NewRegistry()
	o := &ops{reg: reg, m: metrics.New(reg)}
	b, err := newCGI("scripts", &config.Backend{Type: "cgi", Script: script, AllowRoot: true}, log, o)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	if err := b.Serve(w, httptest.NewRequest("GET", "/x", nil)); err != nil || w.Body.String() != "ok" {
		t.Fatalf("Serve: %v, body %q", err, w.Body.String())
	}
	if err := b.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "something odd") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no log line for the script's stderr in:\n%s", buf.String())
	}
	if n := strings.Count(line, "backend=scripts"); n != 1 {
		t.Errorf("backend named %d times in %q", n, line)
	}
}
