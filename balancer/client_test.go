package balancer

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/junction-gw/junction/backends"
)

// TestClientErrorNeitherEjectsNorRetries: a request that fails on the
// client's side (its body ended early, the client went away) says nothing
// about the instance. However often it happens, it is not retried, not
// counted as a failure and ejects nobody, and the pool reports it with the
// client's status.
func TestClientErrorNeitherEjectsNorRetries(t *testing.T) {
	tests := []struct {
		name   string
		method string
		err    error
		status int
	}{
		{"short body", http.MethodPost,
			&backends.ClientError{Err: errors.New("request body ended early")}, http.StatusBadRequest},
		{"short body on an idempotent method", http.MethodPut,
			&backends.ClientError{Err: errors.New("request body ended early")}, http.StatusBadRequest},
		{"client gone", http.MethodGet,
			&backends.ClientError{Err: fmt.Errorf("upstream: %w", backends.ErrClientGone)}, backends.StatusClientClosedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			fs, insts := fakes("a", "b")
			p := newPool(t, insts, Options{FailThreshold: 1, Clock: clk})
			for i := range 6 {
				fs[0].setErrs(tt.err)
				fs[1].setErrs(tt.err)
				before := fs[0].nCalls() + fs[1].nCalls()
				var r *http.Request
				if tt.method == http.MethodGet {
					r = get("/")
				} else {
					r = httptest.NewRequest(tt.method, "/", strings.NewReader("x=1"))
					r.GetBody = nil
				}
				_, err, _ := do(p, r)
				if !backends.IsClientError(err) || backends.Status(err) != tt.status {
					t.Errorf("request %d: err = %v (status %d), want a client error with status %d",
						i+1, err, backends.Status(err), tt.status)
				}
				if n := fs[0].nCalls() + fs[1].nCalls() - before; n != 1 {
					t.Errorf("request %d: %d attempts, want 1 (a client error is never retried)", i+1, n)
				}
			}
			for _, st := range p.Snapshot().Instances {
				if st.Ejected || st.Ejections != 0 || st.Failures != 0 {
					t.Errorf("%s: ejected %v, %d ejections, %d failures after client errors; want none",
						st.Name, st.Ejected, st.Ejections, st.Failures)
				}
			}
			fs[0].setErrs()
			fs[1].setErrs()
			got := sequence(t, p, 2)
			if !(got[0] != got[1] && got[0] != "" && got[1] != "") {
				t.Errorf("answers after client errors %q, want both instances", got)
			}
		})
	}
}
