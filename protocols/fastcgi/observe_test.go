package fastcgi

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
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
	badVersion := get(1, 0, "/hello")
	badVersion[0] = 2
	const (
		complete = "fastcgi_end_request_request_complete"
	)
	tests := []struct {
		name       string
		input      []byte
		multiplex  bool
		reasons    []string
		wantEvents []string // sorted
	}{
		{"get", get(1, 0, "/hello"), true, nil, []string{complete}},
		{"two requests kept", cat(get(1, 1, "/hello"), get(2, 0, "/hello")), true, nil, []string{complete, complete}},
		{"unknown role", begin(4, roleAuthorizer, 0), true, nil, []string{"fastcgi_end_request_unknown_role"}},
		// Request 1 never sends its PARAMS: the read timeout ends it.
		{"cannot multiplex", cat(begin(1, roleResponder, 1), begin(2, roleResponder, 1)), false, []string{"timeout"},
			[]string{"fastcgi_end_request_cant_mpx_conn", complete}},
		{"abort", cat(begin(9, roleResponder, 0), rec(typeParams, 9, nv("A", "b")), rec(typeAbortRequest, 9, nil)), true, nil,
			[]string{"fastcgi_abort", complete}},
		{"get values", rec(typeGetValues, 0, nv("FCGI_MPXS_CONNS", "")), true, nil, []string{"fastcgi_get_values"}},
		{"params too big", cat(begin(5, roleResponder, 0), paramsRecs(5, nv("REQUEST_METHOD", "GET", "HTTP_X", strings.Repeat("a", 70000)), 30000, 60000), stdinRecs(5, nil, 1)), true,
			[]string{"header_too_large"}, []string{complete}},
		{"no request method", cat(begin(1, roleResponder, 0), paramsRecs(1, nv("REQUEST_URI", "/")), stdinRecs(1, nil, 1)), true,
			[]string{"bad_request"}, []string{complete}},
		// A repeated param is not an error: the last value wins, as in php-fpm.
		{"duplicate variable", cat(begin(1, roleResponder, 0), paramsRecs(1, nv("REQUEST_METHOD", "GET", "REQUEST_URI", "/", "REQUEST_METHOD", "POST")), stdinRecs(1, nil, 1)), true,
			nil, []string{complete}},
		{"bad version", badVersion, true, []string{"bad_version"}, nil},
		{"bad name-value", cat(begin(1, roleResponder, 1), rec(typeParams, 1, []byte{5, 5, 'a'}), rec(typeParams, 1, nil)), true,
			[]string{"bad_params"}, []string{complete}},
		{"stdout from peer", rec(typeStdout, 1, []byte("x")), true, []string{"unexpected_record"}, nil},
		{"short begin", rec(typeBeginRequest, 1, []byte{0, 1}), true, []string{"protocol_error"}, nil},
		{"record cut short", rec(typeParams, 1, []byte("abcdefgh"))[:12], true, []string{"timeout"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := &obsRecorder{}
				s := newTestServer()
				s.Multiplex = tt.multiplex
				s.Observer = o
				exchange(t, s, tt.input)
				if o.opened != 1 || o.closed != 1 {
					t.Errorf("opened %d, closed %d; want 1 and 1", o.opened, o.closed)
				}
				if !slices.Equal(o.reasons, tt.reasons) {
					t.Errorf("reasons %q, want %q", o.reasons, tt.reasons)
				}
				slices.Sort(o.events)
				if !slices.Equal(o.events, tt.wantEvents) {
					t.Errorf("events %q, want %q", o.events, tt.wantEvents)
				}
			})
		})
	}
}

func TestEndRequestEventNames(t *testing.T) {
	for status, want := range map[uint8]string{
		statusRequestComplete: "fastcgi_end_request_request_complete",
		statusCantMpxConn:     "fastcgi_end_request_cant_mpx_conn",
		statusOverloaded:      "fastcgi_end_request_overloaded",
		statusUnknownRole:     "fastcgi_end_request_unknown_role",
		9:                     "fastcgi_end_request_other",
	} {
		if got := endRequestEvent(status); got != want {
			t.Errorf("endRequestEvent(%d) = %q, want %q", status, got, want)
		}
	}
}
