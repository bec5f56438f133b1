package scgi

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that remembers what it was told.
type recorder struct {
	mu             sync.Mutex
	opened, closed int
	reasons        []string
	events         []string
}

func (o *recorder) ConnOpened() { o.mu.Lock(); o.opened++; o.mu.Unlock() }
func (o *recorder) ConnClosed() { o.mu.Lock(); o.closed++; o.mu.Unlock() }
func (o *recorder) DecodeError(r string) {
	o.mu.Lock()
	o.reasons = append(o.reasons, r)
	o.mu.Unlock()
}
func (o *recorder) Event(n string) { o.mu.Lock(); o.events = append(o.events, n); o.mu.Unlock() }

func TestObserverReasons(t *testing.T) {
	tests := []struct {
		name, raw string
		want      []string
	}{
		{"good request", request("GET", "/", ""), nil},
		{"garbage", "GET / HTTP/1.1\r\n\r\n", []string{"bad_netstring"}},
		{"leading zero", "01:x,", []string{"bad_netstring"}},
		{"no comma", "2:ab;", []string{"bad_netstring"}},
		{"too big", "999999:", []string{"header_too_large"}},
		{"no final NUL", "3:abc,", []string{"bad_vars"}},
		{"content length not first", head("SCGI", "1", "CONTENT_LENGTH", "0"), []string{"missing_content_length"}},
		{"bad content length", head("CONTENT_LENGTH", "-1", "SCGI", "1"), []string{"bad_content_length"}},
		{"duplicate", head("CONTENT_LENGTH", "0", "SCGI", "1", "CONTENT_LENGTH", "0"), []string{"duplicate_var"}},
		{"no SCGI", head("CONTENT_LENGTH", "0", "REQUEST_METHOD", "GET"), []string{"missing_scgi"}},
		{"no method", head("CONTENT_LENGTH", "0", "SCGI", "1", "REQUEST_URI", "/"), []string{"bad_request"}},
		// The peer stops sending mid-head: the read deadline ends it.
		{"stalled head", "40:CONTENT_LENGTH\x000\x00", []string{"timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &recorder{}
			s := &Server{Observer: o, ReadTimeout: 20 * time.Millisecond, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
			roundTrip(t, s, tt.raw)
			if o.opened != 1 || o.closed != 1 {
				t.Errorf("opened %d, closed %d; want 1 and 1", o.opened, o.closed)
			}
			if !slices.Equal(o.reasons, tt.want) {
				t.Errorf("reasons %q, want %q", o.reasons, tt.want)
			}
		})
	}
}
