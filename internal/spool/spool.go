// Package spool holds bytes junction cannot pass on yet: in memory up to
// a bound, then in unlinked temporary files whose total size is bounded
// by a Budget shared by everything one listener spools.
//
// Two things spool:
//
//   - Handler holds a response until its request body has been read
//     (response_buffering). Some front servers stop sending the request
//     body once response bytes arrive (nginx's scgi_pass, fastcgi_pass and
//     proxy_pass), others read no response until they have sent the whole
//     body (Apache's mod_proxy_scgi and mod_proxy_http); either way a
//     backend that answers while it reads (a CGI script that echoes its
//     stdin, an app streaming progress) deadlocks with the front unless
//     the gateway holds the answer, as nginx's own buffering does for its
//     upstreams. The same trap is documented for Apache's mod_cgi.
//   - The FastCGI front end spools STDIN that a multiplexing peer keeps
//     sending for a request whose handler does not read yet.
//
// Budget is the bound both charge: a File reserves every byte it writes
// and releases them when it is reset or closed. A write the Budget cannot
// cover fails with ErrFull, and the caller refuses the request (503).
//
// Files are created in Dir (default os.TempDir) and unlinked at once, so
// they disappear with their descriptor even if junction is killed.
package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// ErrFull is returned when spooling more would exceed the Budget
// (max_spool_bytes).
var ErrFull = errors.New("spool: max_spool_bytes reached")

// Budget bounds the bytes spooled to temporary files at once. Reserve
// and Release may be called from any goroutine. A nil *Budget, or one with
// a limit of 0 or less, bounds nothing but still counts.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a Budget of limit bytes.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Reserve takes n bytes from the budget and reports whether they were
// available; when not, nothing is taken.
func (b *Budget) Reserve(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	for {
		u := b.used.Load()
		if b.limit > 0 && u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// Release gives back n bytes taken by Reserve.
func (b *Budget) Release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.used.Add(-n)
}

// Used returns the bytes reserved now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Limit returns the budget's bound; 0 or less means none.
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// File is a temporary file that grows by Append and charges every byte
// to Budget. The zero value is ready to use: the file is created on the
// first Append. It is not safe for concurrent use.
type File struct {
	// Budget is charged for the file's bytes; nil bounds nothing.
	Budget *Budget
	// Dir is where the file is created; empty means os.TempDir().
	Dir string
	// Pattern names the file as os.CreateTemp does, for anyone listing
	// open descriptors; empty means "junction-spool-".
	Pattern string

	f *os.File
	n int64 // bytes in the file, all reserved from Budget
}

// Append writes p at the end of the file. It fails with ErrFull, writing
// nothing, when the Budget cannot cover p.
func (s *File) Append(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if !s.Budget.Reserve(int64(len(p))) {
		return fmt.Errorf("%w (%d of %d bytes in use, %d more wanted)", ErrFull, s.Budget.Used(), s.Budget.Limit(), len(p))
	}
	if err := s.create(); err != nil {
		s.Budget.Release(int64(len(p)))
		return err
	}
	m, err := s.f.WriteAt(p, s.n)
	s.n += int64(m)
	s.Budget.Release(int64(len(p) - m))
	if err != nil {
		return fmt.Errorf("spool: writing temporary file: %w", err)
	}
	return nil
}

func (s *File) create() error {
	if s.f != nil {
		return nil
	}
	pattern := s.Pattern
	if pattern == "" {
		pattern = "junction-spool-"
	}
	f, err := os.CreateTemp(s.Dir, pattern)
	if err != nil {
		return fmt.Errorf("spool: creating temporary file: %w", err)
	}
	// Unlinked at once: the file lives only as long as its descriptor.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return fmt.Errorf("spool: unlinking temporary file: %w", err)
	}
	s.f = f
	return nil
}

// Stdin returns the file's descriptor, for a child process to read its
// bytes as standard input; nil before the first Append. Its offset stays
// at the start: Append writes at offsets and never moves it. It remains
// s's: Close closes it, and the child keeps its own copy. A nil *File
// has none.
func (s *File) Stdin() *os.File {
	if s == nil {
		return nil
	}
	return s.f
}

// Len returns the bytes appended since the file was last reset.
func (s *File) Len() int64 { return s.n }

// ReadAt reads from the file's bytes at off (io.ReaderAt); it reads
// nothing at or beyond Len.
func (s *File) ReadAt(p []byte, off int64) (int, error) {
	if s.f == nil || off >= s.n {
		return 0, io.EOF
	}
	if rest := s.n - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := s.f.ReadAt(p, off)
	if err != nil && n == len(p) {
		err = nil
	}
	if err != nil {
		return n, fmt.Errorf("spool: reading temporary file: %w", err)
	}
	return n, nil
}

// Reset empties the file, keeping it open for reuse, and releases its
// bytes.
func (s *File) Reset() error {
	if s.f == nil || s.n == 0 {
		return nil
	}
	s.Budget.Release(s.n)
	s.n = 0
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("spool: truncating temporary file: %w", err)
	}
	return nil
}

// Close releases the file's bytes and closes it, which removes it. The
// File may be used again: the next Append creates a new file.
func (s *File) Close() error {
	s.Budget.Release(s.n)
	s.n = 0
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("spool: closing temporary file: %w", err)
	}
	return nil
}
