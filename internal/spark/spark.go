// Package spark records what a sparkline shows: per time bucket, how many
// requests there were, how many failed, and their latency distribution,
// over a short window (by default the last 15 minutes in 10-second
// buckets). The status page draws requests/s, errors/s and p99 from it for
// each pool and each instance.
//
// Recording is on the request path, so it is cheap: a bucket is an array
// of atomic counters (the request count, the error count and a fixed
// latency histogram of half-octave bins), found by the time alone; no lock
// is taken except once per bucket length, by the first request of a new
// bucket, which clears it. Reading (Points) is for the status page: it
// copies the window and derives the rates and the p99, which is the
// geometric middle of the histogram bin that holds it (within a quarter
// of the true value).
package spark

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Window shape.
const (
	// Buckets is the number of buckets in the window.
	Buckets = 90
	// Interval is the length of one bucket.
	Interval = 10 * time.Second
)

// Histogram bins: half octaves from minLatency up; the first bin also
// takes everything faster, the last everything slower.
const (
	minShift = 14 // 2^14 ns ≈ 16 µs
	maxShift = 36 // 2^36 ns ≈ 69 s
	bins     = 2 * (maxShift - minShift)
)

// bucket is one interval's counters. epoch is the interval number
// (Unix time / Interval) whose counts it holds.
type bucket struct {
	epoch    atomic.Int64
	requests atomic.Uint32
	errors   atomic.Uint32
	hist     [bins]atomic.Uint32
}

// Series is one sparkline's data: a ring of buckets. The zero Series is
// ready to use; it must not be copied after first use.
type Series struct {
	ring [Buckets]bucket
	mu   sync.Mutex // clears a bucket for a new interval
}

// Record counts one request that ended at now after took; failed counts
// it as an error too. It is safe for concurrent use and allocates nothing.
func (s *Series) Record(now time.Time, took time.Duration, failed bool) {
	epoch := now.UnixNano() / int64(Interval)
	b := &s.ring[uint64(epoch)%Buckets]
	if b.epoch.Load() != epoch {
		s.turn(b, epoch)
	}
	b.requests.Add(1)
	if failed {
		b.errors.Add(1)
	}
	b.hist[bin(took)].Add(1)
}

// turn clears b for epoch unless another request did it first. A
// recorder that finds b's epoch already current counts into it without
// the lock: the epoch is stored only after the counters are cleared.
func (s *Series) turn(b *bucket, epoch int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := b.epoch.Load(); e >= epoch {
		return // cleared meanwhile (or a stale clock: count into the newer)
	}
	b.requests.Store(0)
	b.errors.Store(0)
	for i := range b.hist {
		b.hist[i].Store(0)
	}
	b.epoch.Store(epoch)
}

// bin returns the histogram bin of d: two per power of two.
func bin(d time.Duration) int {
	n := uint64(max(d, 0))
	l := bits.Len64(n) // n < 2^l
	if l <= minShift {
		return 0
	}
	i := 2*(l-1-minShift) + int(n>>(l-2)&1) // the bit below the top one picks the half
	return min(i, bins-1)
}

// binMiddle is the geometric middle of bin i, as a latency. Bin 2k spans
// [1, 1.5) × 2^(minShift+k) ns, bin 2k+1 [1.5, 2) × 2^(minShift+k) ns.
func binMiddle(i int) time.Duration {
	lo := math.Exp2(float64(minShift + i/2))
	if i%2 == 0 {
		return time.Duration(lo * math.Sqrt(1.5))
	}
	return time.Duration(lo * math.Sqrt(3))
}

// Point is one bucket as a sparkline shows it.
type Point struct {
	// Start is when the bucket's interval began.
	Start time.Time `json:"start"`
	// Requests and Errors are the counts in the interval.
	Requests uint32 `json:"requests"`
	Errors   uint32 `json:"errors"`
	// Seconds is the length of the interval that has passed: Interval,
	// or less for the current bucket.
	Seconds float64 `json:"seconds"`
	// P99 is the 99th percentile latency of the interval's requests (0
	// without requests).
	P99 time.Duration `json:"p99"`
}

// RequestRate is Requests per second of the interval.
func (p Point) RequestRate() float64 { return rate(p.Requests, p.Seconds) }

// ErrorRate is Errors per second of the interval.
func (p Point) ErrorRate() float64 { return rate(p.Errors, p.Seconds) }

func rate(n uint32, sec float64) float64 {
	if sec <= 0 {
		return 0
	}
	return float64(n) / sec
}

// Points returns the window ending at now, oldest first: Buckets points,
// the last one the current (partial) interval. Buckets nothing was
// recorded in have zero counts.
func (s *Series) Points(now time.Time) []Point {
	out := make([]Point, Buckets)
	cur := now.UnixNano() / int64(Interval)
	for i := range out {
		epoch := cur - Buckets + 1 + int64(i)
		p := Point{Start: time.Unix(0, epoch*int64(Interval)), Seconds: Interval.Seconds()}
		if epoch == cur {
			p.Seconds = max(now.Sub(p.Start).Seconds(), 1) // a rate over less than a second says little
		}
		b := &s.ring[uint64(epoch)%Buckets]
		if b.epoch.Load() == epoch {
			p.Requests, p.Errors = b.requests.Load(), b.errors.Load()
			var hist [bins]uint32
			total := uint64(0)
			for j := range hist {
				hist[j] = b.hist[j].Load()
				total += uint64(hist[j])
			}
			p.P99 = quantile(hist[:], total, 0.99)
		}
		out[i] = p
	}
	return out
}

// quantile returns the middle of the bin holding the q quantile of a
// histogram of total counts.
func quantile(hist []uint32, total uint64, q float64) time.Duration {
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	seen := uint64(0)
	for i, n := range hist {
		seen += uint64(n)
		if seen >= rank {
			return binMiddle(i)
		}
	}
	return binMiddle(len(hist) - 1)
}
