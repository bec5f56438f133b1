// Package idle keeps a backend's idle connections for reuse: at most Max
// of them, the most recently used handed out first, none kept longer than
// Timeout. Both the HTTP backend (HTTP/1.1 keep-alive) and the FastCGI
// backend (FCGI_KEEP_CONN) keep their connections here.
package idle

import (
	"sync"
	"time"
)

// Closer is what a pool keeps: a connection, or a connection with its
// buffers.
type Closer interface{ Close() error }

// Pool holds idle connections. The zero Pool keeps nothing; set it up
// with New.
type Pool[C Closer] struct {
	max     int
	timeout time.Duration
	fit     func(C) bool

	mu      sync.Mutex
	conns   []entry[C]  // most recently used last
	sweeper *time.Timer // closes connections idle longer than timeout
	closed  bool
}

type entry[C Closer] struct {
	c  C
	at time.Time
}

// New returns a pool keeping at most max connections, each for at most
// timeout. fit reports whether a connection taken from the pool can still
// carry a request (typically rawconn.Quiet); nil means always.
func New[C Closer](max int, timeout time.Duration, fit func(C) bool) *Pool[C] {
	return &Pool[C]{max: max, timeout: timeout, fit: fit}
}

// Get returns the most recently used idle connection that has not timed
// out and is still fit, closing the ones it passes over; ok is false when
// there is none.
func (p *Pool[C]) Get() (c C, ok bool) {
	if p == nil || p.max <= 0 {
		return c, false
	}
	now := time.Now()
	for {
		p.mu.Lock()
		if len(p.conns) == 0 {
			p.mu.Unlock()
			return c, false
		}
		e := p.conns[len(p.conns)-1]
		p.conns[len(p.conns)-1] = entry[C]{}
		p.conns = p.conns[:len(p.conns)-1]
		p.mu.Unlock()
		if now.Sub(e.at) < p.timeout && (p.fit == nil || p.fit(e.c)) {
			return e.c, true
		}
		_ = e.c.Close()
	}
}

// Put keeps c for reuse, or closes it when the pool is full or closed.
func (p *Pool[C]) Put(c C) {
	if p == nil || p.max <= 0 {
		_ = c.Close()
		return
	}
	now := time.Now()
	p.mu.Lock()
	if p.closed || len(p.conns) >= p.max {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	p.conns = append(p.conns, entry[C]{c: c, at: now})
	if p.sweeper == nil {
		p.sweeper = time.AfterFunc(p.timeout, p.sweep)
	}
	p.mu.Unlock()
}

// Len returns the number of idle connections.
func (p *Pool[C]) Len() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// sweep closes connections idle for timeout and re-arms while any is
// left.
func (p *Pool[C]) sweep() {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := p.conns[:0]
	for _, e := range p.conns { // oldest first
		if now.Sub(e.at) >= p.timeout {
			_ = e.c.Close()
			continue
		}
		keep = append(keep, e)
	}
	clear(p.conns[len(keep):])
	p.conns = keep
	p.sweeper = nil
	if len(p.conns) > 0 && !p.closed {
		p.sweeper = time.AfterFunc(p.conns[0].at.Add(p.timeout).Sub(now), p.sweep)
	}
}

// CloseIdle closes every idle connection; the pool stays usable.
func (p *Pool[C]) CloseIdle() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
}

// Close closes every idle connection, and every connection Put later.
func (p *Pool[C]) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.closeLocked()
}

func (p *Pool[C]) closeLocked() {
	for _, e := range p.conns {
		_ = e.c.Close()
	}
	clear(p.conns)
	p.conns = p.conns[:0]
	if p.sweeper != nil {
		p.sweeper.Stop()
		p.sweeper = nil
	}
}
