package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestSetGCPercent: serve's collector defaults apply only where the
// environment is silent.
func TestSetGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	tests := []struct {
		gogc, memlimit string
		wantPercent    int
		wantLimit      int64
	}{
		{"", "", defaultGCPercent, defaultMemoryLimit},
		{"50", "", 100, defaultMemoryLimit},           // GOGC set: left as the runtime read it (reset to 100 here)
		{"", "1GiB", defaultGCPercent, math.MaxInt64}, // GOMEMLIMIT set: left alone
	}
	for _, tt := range tests {
		t.Setenv("GOGC", tt.gogc)
		t.Setenv("GOMEMLIMIT", tt.memlimit)
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
		setGCPercent()
		if got := debug.SetGCPercent(100); got != tt.wantPercent {
			t.Errorf("GOGC=%q GOMEMLIMIT=%q: GC percent %d, want %d", tt.gogc, tt.memlimit, got, tt.wantPercent)
		}
		if got := debug.SetMemoryLimit(math.MaxInt64); got != tt.wantLimit {
			t.Errorf("GOGC=%q GOMEMLIMIT=%q: memory limit %d, want %d", tt.gogc, tt.memlimit, got, tt.wantLimit)
		}
	}
}
