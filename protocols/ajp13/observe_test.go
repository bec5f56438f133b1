package ajp13

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// obsRecorder is an Observer that remembers what it was told.
type obsRecorder struct {
	mu             sync.Mutex
	opened, closed int
	reasons        []string
	events         []string
}

func (o *obsRecorder) ConnOpened() { o.mu.Lock(); o.opened++; o.mu.Unlock() }
func (o *obsRecorder) ConnClosed() { o.mu.Lock(); o.closed++; o.mu.Unlock() }
func (o *obsRecorder) DecodeError(r string) {
	o.mu.Lock()
	o.reasons = append(o.reasons, r)
	o.mu.Unlock()
}
func (o *obsRecorder) Event(n string) { o.mu.Lock(); o.events = append(o.events, n); o.mu.Unlock() }

func TestObserver(t *testing.T) {
	shutdown := rawPacket(byte(typeShutdown)) // ends a connection that would stay open
	tests := []struct {
		name    string
		srv     *Server
		pkts    [][]byte
		reasons []string
		events  []string
	}{
		{"cping", &Server{}, [][]byte{rawPacket(byte(typeCPing)), rawPacket(byte(typePing)), shutdown}, nil,
			[]string{"ajp_cping", "ajp_cping", "ajp_shutdown_refused"}},
		{"request then shutdown", &Server{}, [][]byte{fwd(t, 2, "/", nil), shutdown}, nil, []string{"ajp_shutdown_refused"}},
		{"secret missing", &Server{Secret: "s3cr3t"}, [][]byte{fwd(t, 2, "/", nil)}, nil, []string{"ajp_secret_refused"}},
		{"secret wrong", &Server{Secret: "s3cr3t"}, [][]byte{fwd(t, 2, "/", nil, strAttr(attrSecret, "nope"))}, nil, []string{"ajp_secret_refused"}},
		{"unknown type", &Server{}, [][]byte{rawPacket(42)}, []string{"unexpected_packet"}, nil},
		{"empty packet", &Server{}, [][]byte{rawPacket()}, []string{"unexpected_packet"}, nil},
		{"bad magic", &Server{}, [][]byte{{'G', 'E', 0, 1, 10}}, []string{"bad_magic"}, nil},
		{"oversize", &Server{}, [][]byte{{0x12, 0x34, 0x20, 0x00}}, []string{"packet_too_large"}, nil},
		{"malformed request", &Server{}, [][]byte{fwd(t, 0, "/", nil)}, []string{"malformed"}, nil},
		{"bad content length", &Server{}, [][]byte{fwd(t, 4, "/", []string{"Content-Length", "abc"})}, []string{"bad_request"}, nil},
		{"headers too large", &Server{MaxHeaderBytes: 100}, [][]byte{fwd(t, 2, "/", []string{"X-Big", strings.Repeat("a", 200)})},
			[]string{"header_too_large"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &obsRecorder{}
			s := tt.srv
			s.Observer = o
			s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
			p := startPeer(t, s)
			go io.Copy(io.Discard, p.c) // replies are not looked at here
			p.send(tt.pkts...)
			p.serveErr()
			o.mu.Lock()
			defer o.mu.Unlock()
			if o.opened != 1 || o.closed != 1 {
				t.Errorf("opened %d, closed %d; want 1 and 1", o.opened, o.closed)
			}
			if !slices.Equal(o.reasons, tt.reasons) {
				t.Errorf("reasons %q, want %q", o.reasons, tt.reasons)
			}
			if !slices.Equal(o.events, tt.events) {
				t.Errorf("events %q, want %q", o.events, tt.events)
			}
		})
	}
}
