package authorizer

import (
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/vars"
)

// upstream is the request's backends.Upstream, as the access log's record
// is: it keeps the user reported to it.
type upstream struct {
	mu      sync.Mutex
	user    string
	userSet int
}

func (u *upstream) SetBackend(string)             {}
func (u *upstream) SetInstance(string)            {}
func (u *upstream) SetUpstreamTime(time.Duration) {}
func (u *upstream) SetUser(name string) {
	u.mu.Lock()
	u.user, u.userSet = name, u.userSet+1
	u.mu.Unlock()
}

// TestUserReported: an allowing answer's REMOTE_USER is reported to the
// request's Upstream (the access log shows it in place of the front
// server's), in every variable form; an answer without one, a denial and
// a failure report none.
func TestUserReported(t *testing.T) {
	for _, tt := range []struct {
		name     string
		answer   string
		headers  bool
		wantUser string
		wantSet  int
	}{
		{"cgi variables", "Status: 200\r\nVariable-REMOTE_USER: alice\r\n\r\n", false, "alice", 1},
		{"headers", "Status: 200\r\nVariable-Remote_User: alice\r\n\r\n", true, "alice", 1},
		{"no user", "Status: 200\r\nVariable-ROLE: admin\r\n\r\n", false, "", 0},
		{"value dropped", "Status: 200\r\nVariable-REMOTE_USER: a\x00b\r\n\r\n", false, "", 0},
		{"denied", "Status: 403\r\nVariable-REMOTE_USER: alice\r\nContent-Type: text/plain\r\n\r\nno", false, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, fixed(tt.answer))
			a := newAuth(t, &guarded{}, Options{Instances: []string{f.addr()}, Headers: tt.headers})
			up := &upstream{}
			r := httptest.NewRequest("GET", "/x", nil)
			ctx := vars.NewContext(r.Context(), vars.Vars{{Name: "REMOTE_USER", Value: "front"}})
			r = r.WithContext(backends.NewUpstreamContext(ctx, up))
			if _, err := serve(a, r); err != nil {
				t.Fatalf("Serve = %v", err)
			}
			if up.user != tt.wantUser || up.userSet != tt.wantSet {
				t.Errorf("SetUser(%q) called %d times, want %q %d times", up.user, up.userSet, tt.wantUser, tt.wantSet)
			}
		})
	}
}
