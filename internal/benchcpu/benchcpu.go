// Package benchcpu reports a benchmark's CPU time per operation. On a
// shared machine the process's CPU time varies less than wall time, which
// includes waiting for a CPU.
package benchcpu

import (
	"syscall"
	"testing"
	"time"
)

// Start starts counting the process's CPU time (user and system, all
// threads: background goroutines and the peer a benchmark runs in-process
// included) and returns the function that reports it per operation as
// cpu-ns/op.
func Start(b *testing.B) func() {
	start := processTime(b)
	return func() {
		b.ReportMetric(float64((processTime(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func processTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
