package idle

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

type conn struct {
	id     int
	fit    bool
	closed atomic.Bool
}

func (c *conn) Close() error { c.closed.Store(true); return nil }

func fitConn(c *conn) bool { return c.fit }

func TestGetMostRecentFirst(t *testing.T) {
	p := New(2, time.Minute, fitConn)
	a, b, c := &conn{id: 1, fit: true}, &conn{id: 2, fit: true}, &conn{id: 3, fit: true}
	p.Put(a)
	p.Put(b)
	p.Put(c) // over max: closed
	if !c.closed.Load() || p.Len() != 2 {
		t.Fatalf("a full pool kept a third connection (len %d, closed %v)", p.Len(), c.closed.Load())
	}
	for _, want := range []*conn{b, a} {
		if got, ok := p.Get(); !ok || got != want {
			t.Fatalf("Get = %v %v, want %d", got, ok, want.id)
		}
	}
	if _, ok := p.Get(); ok {
		t.Fatal("Get from an empty pool succeeded")
	}
}

func TestGetSkipsUnfitAndExpired(t *testing.T) {
	p := New(4, time.Minute, fitConn)
	good, bad := &conn{id: 1, fit: true}, &conn{id: 2}
	p.Put(good)
	p.Put(bad)
	if got, ok := p.Get(); !ok || got != good || !bad.closed.Load() {
		t.Fatalf("Get = %v %v; want the fit one, the unfit one closed", got, ok)
	}

	synctest.Test(t, func(t *testing.T) {
		p := New[*conn](4, 20*time.Millisecond, nil)
		young, old := &conn{id: 3}, &conn{id: 4}
		p.Put(young)
		time.Sleep(19 * time.Millisecond)
		if got, ok := p.Get(); !ok || got != young {
			t.Fatalf("Get before the timeout = %v %v, want the connection", got, ok)
		}
		p.Put(old)
		p.mu.Lock()
		p.sweeper.Stop() // Get, not the sweep, must find it expired
		p.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		if _, ok := p.Get(); ok {
			t.Fatal("Get returned a connection idle for the timeout")
		}
		if !old.closed.Load() {
			t.Error("the expired connection was not closed")
		}
	})
}

// The sweep closes connections idle past the timeout, keeps younger ones,
// and stops once the pool is empty.
func TestSweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New[*conn](4, 50*time.Millisecond, nil)
		a := &conn{id: 1}
		p.Put(a)
		time.Sleep(30 * time.Millisecond)
		b := &conn{id: 2}
		p.Put(b)
		time.Sleep(20 * time.Millisecond) // a's timeout
		synctest.Wait()
		if !a.closed.Load() || b.closed.Load() || p.Len() != 1 {
			t.Fatalf("at a's timeout: a closed %v, b closed %v, %d idle; want a alone closed",
				a.closed.Load(), b.closed.Load(), p.Len())
		}
		time.Sleep(30 * time.Millisecond) // b's timeout
		synctest.Wait()
		if !b.closed.Load() || p.Len() != 0 {
			t.Fatalf("at b's timeout: b closed %v, %d idle", b.closed.Load(), p.Len())
		}
		p.mu.Lock()
		armed := p.sweeper != nil
		p.mu.Unlock()
		if armed {
			t.Error("the sweep is still armed with no connection left")
		}
	})
}

func TestClose(t *testing.T) {
	p := New[*conn](4, time.Minute, nil)
	a := &conn{id: 1}
	p.Put(a)
	p.CloseIdle()
	if !a.closed.Load() || p.Len() != 0 {
		t.Fatal("CloseIdle left a connection open")
	}
	b := &conn{id: 2}
	p.Put(b)
	if b.closed.Load() {
		t.Fatal("Put after CloseIdle closed the connection")
	}
	p.Close()
	c := &conn{id: 3}
	p.Put(c)
	if !b.closed.Load() || !c.closed.Load() {
		t.Fatal("Close did not close the idle connection, or Put after Close kept one")
	}

	var none *Pool[*conn]
	d := &conn{id: 4}
	none.Put(d)
	if _, ok := none.Get(); ok || !d.closed.Load() || none.Len() != 0 {
		t.Fatal("a nil pool must keep nothing")
	}
	none.Close()
}
