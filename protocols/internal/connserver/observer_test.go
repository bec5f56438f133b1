package connserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
)

type fakeObserver struct {
	mu      sync.Mutex
	opened  int
	closed  int
	reasons []string
	events  []string
}

func (o *fakeObserver) ConnOpened() { o.mu.Lock(); o.opened++; o.mu.Unlock() }
func (o *fakeObserver) ConnClosed() { o.mu.Lock(); o.closed++; o.mu.Unlock() }
func (o *fakeObserver) DecodeError(r string) {
	o.mu.Lock()
	o.reasons = append(o.reasons, r)
	o.mu.Unlock()
}
func (o *fakeObserver) Event(n string) { o.mu.Lock(); o.events = append(o.events, n); o.mu.Unlock() }

var errCustom = errors.New("custom")

func TestObserver(t *testing.T) {
	tests := []struct {
		name    string
		handler Handler
		reason  func(error) string
		want    []string
	}{
		{"clean end", func(context.Context, *Conn) error { return nil }, nil, nil},
		{"eof is quiet", func(context.Context, *Conn) error { return io.EOF }, nil, nil},
		{"timeout", func(context.Context, *Conn) error { return fmt.Errorf("x: %w", os.ErrDeadlineExceeded) }, nil, []string{ReasonTimeout}},
		{"truncated", func(context.Context, *Conn) error { return io.ErrUnexpectedEOF }, nil, []string{ReasonTruncated}},
		{"unclassified", func(context.Context, *Conn) error { return errCustom }, nil, []string{ReasonOther}},
		{"codec reason", func(context.Context, *Conn) error { return errCustom }, func(err error) string {
			if errors.Is(err, errCustom) {
				return "custom"
			}
			return GenericReason(err)
		}, []string{"custom"}},
		{"not counted", func(context.Context, *Conn) error { return errCustom }, func(error) string { return "" }, nil},
		{"panic", func(context.Context, *Conn) error { panic("boom") }, nil, []string{ReasonPanic}},
		{"event", func(_ context.Context, c *Conn) error { c.srv.Event("ping"); return nil }, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &fakeObserver{}
			s := &Server{Protocol: "test", Handler: tt.handler, Reason: tt.reason, Observer: o,
				Logger: slog.New(slog.DiscardHandler)}
			a, b := net.Pipe()
			defer b.Close()
			s.ServeConn(context.Background(), a)
			if o.opened != 1 || o.closed != 1 {
				t.Errorf("opened %d closed %d, want 1 and 1", o.opened, o.closed)
			}
			if !slices.Equal(o.reasons, tt.want) {
				t.Errorf("reasons %q, want %q", o.reasons, tt.want)
			}
		})
	}
}

func TestObserverEvent(t *testing.T) {
	o := &fakeObserver{}
	s := &Server{Observer: o}
	s.Event("ajp_cping")
	s.DecodeError("bad_magic")
	s.DecodeError("") // not counted
	if !slices.Equal(o.events, []string{"ajp_cping"}) || !slices.Equal(o.reasons, []string{"bad_magic"}) {
		t.Errorf("events %q reasons %q", o.events, o.reasons)
	}
	var nilObs Server // no observer: calls are no-ops
	nilObs.Event("x")
	nilObs.DecodeError("y")
}
