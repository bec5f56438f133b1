package spool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestBudget(t *testing.T) {
	tests := []struct {
		name    string
		limit   int64
		reserve []int64
		want    []bool
		used    int64
	}{
		{"within", 100, []int64{40, 60}, []bool{true, true}, 100},
		{"beyond refuses and takes nothing", 100, []int64{40, 61, 60}, []bool{true, false, true}, 100},
		{"one too big", 10, []int64{11}, []bool{false}, 0},
		{"no limit", 0, []int64{1 << 40, 1 << 40}, []bool{true, true}, 2 << 40},
		{"zero and negative are free", 1, []int64{0, -5, 1}, []bool{true, true, true}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(tt.limit)
			for i, n := range tt.reserve {
				if got := b.Reserve(n); got != tt.want[i] {
					t.Errorf("Reserve(%d) #%d = %v, want %v", n, i, got, tt.want[i])
				}
			}
			if b.Used() != tt.used {
				t.Errorf("Used = %d, want %d", b.Used(), tt.used)
			}
		})
	}
}

func TestNilBudget(t *testing.T) {
	var b *Budget
	if !b.Reserve(1<<62) || b.Used() != 0 || b.Limit() != 0 {
		t.Fatalf("nil budget: Reserve refused or counted (used %d)", b.Used())
	}
	b.Release(5) // must not panic
}

// TestBudgetConcurrent reserves and releases from many goroutines: the
// bound holds at every moment and everything comes back.
func TestBudgetConcurrent(t *testing.T) {
	const limit = 1000
	b := NewBudget(limit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	over := false
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				if b.Reserve(300) {
					if u := b.Used(); u > limit {
						mu.Lock()
						over = true
						mu.Unlock()
					}
					b.Release(300)
				}
			}
		})
	}
	wg.Wait()
	if over {
		t.Error("Used went above the limit")
	}
	if b.Used() != 0 {
		t.Errorf("Used = %d after every reservation was released", b.Used())
	}
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	b := NewBudget(100)
	f := &File{Budget: b, Dir: dir, Pattern: "junction-test-"}
	defer f.Close()
	if err := f.Append([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	if err := f.Append([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("temporary file visible in %s: %v (want it unlinked at once)", dir, ents)
	}
	if f.Len() != 11 || b.Used() != 11 {
		t.Errorf("Len %d, Used %d, want 11 and 11", f.Len(), b.Used())
	}
	got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Len()))
	if err != nil || string(got) != "hello world" {
		t.Fatalf("read back %q, %v", got, err)
	}
	if n, err := f.ReadAt(make([]byte, 4), 11); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(Len) = %d, %v, want 0, EOF", n, err)
	}

	err = f.Append(bytes.Repeat([]byte("x"), 90))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Append beyond the budget: %v, want ErrFull", err)
	}
	if f.Len() != 11 || b.Used() != 11 {
		t.Errorf("after a refused Append: Len %d, Used %d, want 11 and 11", f.Len(), b.Used())
	}

	if err := f.Reset(); err != nil {
		t.Fatal(err)
	}
	if f.Len() != 0 || b.Used() != 0 {
		t.Errorf("after Reset: Len %d, Used %d", f.Len(), b.Used())
	}
	if err := f.Append(bytes.Repeat([]byte("y"), 100)); err != nil {
		t.Fatalf("Append after Reset: %v", err)
	}
	if openSpoolFiles(t, "junction-test-") != 1 {
		t.Errorf("want one open spool file")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Used() != 0 || openSpoolFiles(t, "junction-test-") != 0 {
		t.Errorf("after Close: Used %d, open files %d", b.Used(), openSpoolFiles(t, "junction-test-"))
	}
}

// openSpoolFiles counts this process's open descriptors on temporary
// files whose name starts with prefix.
func openSpoolFiles(t *testing.T, prefix string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list open files: %v", err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(filepath.Base(target), prefix) {
			n++
		}
	}
	return n
}

// TestFileStdin: the descriptor Stdin hands over reads the appended bytes
// from the start, as a child's stdin does, and the file has no name.
func TestFileStdin(t *testing.T) {
	if (*File)(nil).Stdin() != nil || (&File{}).Stdin() != nil {
		t.Fatal("Stdin of a file never appended to is not nil")
	}
	s := &File{Dir: t.TempDir()}
	defer s.Close()
	for _, p := range []string{"hello, ", "world"} {
		if err := s.Append([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := io.ReadAll(s.Stdin())
	if err != nil || string(got) != "hello, world" {
		t.Fatalf("read %q, %v through Stdin, want %q", got, err, "hello, world")
	}
	if ents, _ := os.ReadDir(s.Dir); len(ents) != 0 {
		t.Errorf("%d entries in Dir, want none (unlinked)", len(ents))
	}
}
