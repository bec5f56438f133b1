package benchcpu

import "testing"

// BenchmarkSpin reports a cpu-ns/op close to ns/op: the loop only
// computes, so the process's CPU time is the benchmark's own.
func BenchmarkSpin(b *testing.B) {
	defer Start(b)()
	x := 0
	for b.Loop() {
		for i := range 1000 {
			x += i * i
		}
	}
	sink = x
}

var sink int
