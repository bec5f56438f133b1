package spark

import (
	"sync"
	"testing"
	"time"
)

// t0 is the start of a bucket.
var t0 = time.Unix(1_700_000_000, 0).Truncate(Interval)

func TestBin(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Microsecond, 0},
		{1 << minShift, 0},
		{3 << (minShift - 1), 1}, // 1.5 × 2^minShift
		{1 << (minShift + 1), 2},
		{3 << minShift, 3},
		{time.Hour, bins - 1},
	} {
		if got := bin(tt.d); got != tt.want {
			t.Errorf("bin(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
	// Every bin's middle falls in that bin, and within a quarter of any
	// latency in it.
	for i := range bins {
		m := binMiddle(i)
		if bin(m) != i {
			t.Errorf("binMiddle(%d) = %v is in bin %d", i, m, bin(m))
		}
	}
	for _, d := range []time.Duration{20 * time.Microsecond, 250 * time.Microsecond, 3 * time.Millisecond,
		47 * time.Millisecond, 900 * time.Millisecond, 12 * time.Second} {
		m := binMiddle(bin(d))
		if r := float64(m) / float64(d); r < 0.75 || r > 1.25 {
			t.Errorf("%v is shown as %v", d, m)
		}
	}
}

func TestPoints(t *testing.T) {
	var s Series
	// Interval 0 (t0): 100 requests of 1ms, 2 of them failed, and one of
	// 2s; interval 5: 10 of 40ms; the current one (interval 89): 3 of 5ms,
	// 4 s in.
	for i := range 100 {
		s.Record(t0.Add(time.Duration(i)*time.Millisecond), time.Millisecond, i < 2)
	}
	s.Record(t0.Add(9*time.Second), 2*time.Second, false)
	for range 10 {
		s.Record(t0.Add(5*Interval+time.Second), 40*time.Millisecond, false)
	}
	now := t0.Add((Buckets-1)*Interval + 4*time.Second)
	for range 3 {
		s.Record(now, 5*time.Millisecond, false)
	}
	ps := s.Points(now)
	if len(ps) != Buckets {
		t.Fatalf("%d points, want %d", len(ps), Buckets)
	}
	if !ps[0].Start.Equal(t0) {
		t.Errorf("first point starts %v, want %v", ps[0].Start, t0)
	}
	check := func(i int, req, errs uint32, p99 time.Duration, reqRate float64) {
		t.Helper()
		p := ps[i]
		if p.Requests != req || p.Errors != errs {
			t.Errorf("point %d: %d requests, %d errors; want %d, %d", i, p.Requests, p.Errors, req, errs)
		}
		if p99 == 0 && p.P99 != 0 || p99 != 0 && (float64(p.P99) < 0.75*float64(p99) || float64(p.P99) > 1.25*float64(p99)) {
			t.Errorf("point %d: p99 %v, want about %v", i, p.P99, p99)
		}
		if r := p.RequestRate(); r < reqRate*0.999 || r > reqRate*1.001 {
			t.Errorf("point %d: %v requests/s, want %v", i, r, reqRate)
		}
	}
	// 101 requests: the 100th is the p99 rank, one of the 1ms ones.
	check(0, 101, 2, time.Millisecond, 10.1)
	if r := ps[0].ErrorRate(); r != 0.2 {
		t.Errorf("point 0: %v errors/s, want 0.2", r)
	}
	check(5, 10, 0, 40*time.Millisecond, 1)
	check(1, 0, 0, 0, 0)
	check(Buckets-1, 3, 0, 5*time.Millisecond, 0.75) // 3 requests in the 4 s so far

	// One interval later, t0's bucket is reused: its old counts are gone.
	later := now.Add(Interval)
	s.Record(later, time.Millisecond, false)
	ps = s.Points(later)
	if p := ps[Buckets-1]; p.Requests != 1 || p.Errors != 0 {
		t.Errorf("reused bucket: %d requests, %d errors; want 1, 0", p.Requests, p.Errors)
	}
	if p := ps[Buckets-2]; p.Requests != 3 {
		t.Errorf("previous bucket: %d requests, want 3", p.Requests)
	}
	// A bucket left over from 15 minutes ago is not shown as current.
	ps = s.Points(later.Add(Buckets * Interval))
	for i, p := range ps {
		if p.Requests != 0 {
			t.Errorf("after a quiet window, point %d has %d requests", i, p.Requests)
		}
	}
}

// TestConcurrent records from many goroutines across an interval
// boundary: no count is lost (run it with -race).
func TestConcurrent(t *testing.T) {
	var s Series
	const workers, each = 8, 1000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				at := t0.Add(Interval - time.Millisecond)
				if (i+w)%2 == 0 {
					at = t0.Add(Interval)
				}
				s.Record(at, time.Millisecond, i%10 == 0)
			}
		})
	}
	wg.Wait()
	ps := s.Points(t0.Add(Interval + time.Second))
	a, b := ps[Buckets-2], ps[Buckets-1]
	if a.Requests+b.Requests != workers*each || a.Errors+b.Errors != workers*each/10 {
		t.Errorf("counted %d+%d requests, %d+%d errors; want %d, %d", a.Requests, b.Requests, a.Errors, b.Errors, workers*each, workers*each/10)
	}
}

func TestRecordAllocs(t *testing.T) {
	var s Series
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() { s.Record(now, time.Millisecond, false) }); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
}

// BenchmarkRecord is the cost a request pays per series it is recorded
// in (a pool request is recorded twice: the pool's and its instance's).
func BenchmarkRecord(b *testing.B) {
	var s Series
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Record(now, time.Duration(i&0xffff)*time.Microsecond, i&63 == 0)
	}
}

// BenchmarkRecordParallel records into one series from every P, as a busy
// pool does.
func BenchmarkRecordParallel(b *testing.B) {
	var s Series
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Record(now, time.Duration(i&0xffff)*time.Microsecond, false)
			i++
		}
	})
}

// BenchmarkPoints is what the status page pays per series per render.
func BenchmarkPoints(b *testing.B) {
	var s Series
	now := time.Now()
	for i := range Buckets * 10 {
		s.Record(now.Add(-time.Duration(i)*time.Second), time.Millisecond, false)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Points(now)
	}
}
