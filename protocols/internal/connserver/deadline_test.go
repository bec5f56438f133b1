package connserver

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

func TestWriteTimeout(t *testing.T) {
	for setting, want := range map[time.Duration]time.Duration{
		0:               DefaultWriteTimeout,
		-1:              0,
		-time.Second:    0,
		5 * time.Second: 5 * time.Second,
	} {
		if got := WriteTimeout(setting); got != want {
			t.Errorf("WriteTimeout(%v) = %v, want %v", setting, got, want)
		}
	}
}

// TestDeadline: per-operation timeouts, a handler's deadline replacing them
// at once (also for a write in progress) until it is cleared or released.
func TestDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		c := Detached(b)
		w := c.Writes()

		// Per operation: each write gets its own timeout.
		start := time.Now()
		w.Arm(5 * time.Second)
		_, err := c.Write([]byte("x"))
		if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) != 5*time.Second {
			t.Errorf("armed write: %v after %v, want a timeout after 5s", err, time.Since(start))
		}

		// A handler's deadline ends a write in progress.
		w.Arm(time.Hour)
		done := make(chan error)
		go func() {
			_, err := c.Write([]byte("x"))
			done <- err
		}()
		time.Sleep(time.Second)
		if err := w.Set(time.Now()); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(at) != 0 {
			t.Errorf("write in progress: %v %v after the handler's deadline, want a timeout at once", err, time.Since(at))
		}
		if !w.Passed() {
			t.Error("Passed = false after the handler's deadline")
		}
		// It holds for later operations, whatever they arm...
		w.Arm(time.Hour)
		if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("later write: %v, want the handler's deadline", err)
		}
		// ...until released: the next request arms its own.
		w.Release()
		if w.Passed() {
			t.Error("Passed after Release")
		}
		w.Arm(time.Hour)
		go io.Copy(io.Discard, a)
		if _, err := c.Write([]byte("x")); err != nil {
			t.Errorf("write after Release: %v", err)
		}
	})
}

// TestLingerAbsorbsUnreadInput: Linger reads what the peer still sends, up
// to its bounds, instead of closing on it.
func TestLingerAbsorbsUnreadInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		c := Detached(b)
		sent := make(chan error, 1)
		go func() {
			_, err := a.Write(make([]byte, 100<<10))
			sent <- err
		}()
		start := time.Now()
		c.Linger(c)
		if err := <-sent; err != nil {
			t.Errorf("peer's write while lingering: %v", err)
		}
		if d := time.Since(start); d != LingerTimeout {
			t.Errorf("lingered %v, want LingerTimeout (%v) for a peer that neither closes nor sends more", d, LingerTimeout)
		}
		b.Close()
	})
}
