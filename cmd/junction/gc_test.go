package main

import (
	"runtime/debug"
	"testing"
)

// TestSetGCPercent: serve's GOGC default applies only when the
// environment sets none.
func TestSetGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tt := range []struct {
		gogc string
		want int
	}{{"", defaultGCPercent}, {"50", 100}} { // set: left as it was (100 here)
		t.Setenv("GOGC", tt.gogc)
		debug.SetGCPercent(100)
		setGCPercent()
		if got := debug.SetGCPercent(100); got != tt.want {
			t.Errorf("GOGC=%q: GC percent %d, want %d", tt.gogc, got, tt.want)
		}
	}
}
