package accesslog

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
)

// TestUpstreamContext checks that what inner layers report through
// backends.UpstreamFromContext reaches the line, and that a Record already
// in the context (put there by the composition root for the metrics) is
// the one filled and logged.
func TestUpstreamContext(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := backends.UpstreamFromContext(r.Context())
		up.SetBackend("pool")
		up.SetInstance("10.0.0.2:8080")
		up.SetUpstreamTime(250 * time.Millisecond)
		w.WriteHeader(http.StatusCreated)
	})
	for _, outer := range []bool{false, true} {
		t.Run(map[bool]string{false: "own record", true: "outer record"}[outer], func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x", nil)
			var pre *Record
			if outer {
				pre = &Record{}
				r = r.WithContext(NewContext(r.Context(), pre))
			}
			line := serve(t, Combined, inner, r)
			for _, want := range []string{`" 201 `, `backend="pool"`, `instance="10.0.0.2:8080"`, "upstream_time=0.250"} {
				if !strings.Contains(line, want) {
					t.Errorf("line %q lacks %q", line, want)
				}
			}
			if outer && (pre.Backend() != "pool" || pre.Instance() != "10.0.0.2:8080") {
				t.Errorf("outer record not filled: %q %q", pre.Backend(), pre.Instance())
			}
		})
	}
}
