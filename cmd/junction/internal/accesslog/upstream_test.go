package accesslog

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/vars"
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

// TestUserFromUpstream: a user an inner layer (a route's authorizer)
// reported through backends.UpstreamFromContext is the line's user, in
// place of the front server's REMOTE_USER; an empty one means the backend
// was told of no user, so the Basic auth name is next, as for the front
// server's.
func TestUserFromUpstream(t *testing.T) {
	setUser := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			backends.UpstreamFromContext(r.Context()).SetUser(name)
		})
	}
	noUser := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, tt := range []struct {
		name  string
		front string // REMOTE_USER from the front server
		basic string
		h     http.Handler
		want  string
	}{
		{"authorizer over front server", "-", "", setUser("alice"), " - alice ["},
		{"authorizer over basic auth", "", "bob", setUser("alice"), " - alice ["},
		{"front server without authorizer user", "carol", "", noUser, " - carol ["},
		{"authorizer cleared the user", "carol", "", setUser(""), " - - ["},
		{"cleared user, basic auth next", "carol", "bob", setUser(""), " - bob ["},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x", nil)
			if tt.front != "" {
				r = r.WithContext(vars.NewContext(r.Context(), vars.Vars{{Name: "REMOTE_USER", Value: tt.front}}))
			}
			if tt.basic != "" {
				r.SetBasicAuth(tt.basic, "pw")
			}
			if line := serve(t, Combined, tt.h, r); !strings.Contains(line, tt.want) {
				t.Errorf("line %q lacks %q", line, tt.want)
			}
		})
	}
	r := httptest.NewRequest("GET", "/x", nil)
	if line := serve(t, JSON, setUser("alice"), r); !strings.Contains(line, `"remote_user":"alice"`) {
		t.Errorf("JSON line %q lacks the authorizer's user", line)
	}
}
