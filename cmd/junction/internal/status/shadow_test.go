package status

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/junction-gw/junction/balancer/shadow"
)

func TestShadowRoute(t *testing.T) {
	s := sample()
	st := shadow.Stats{Route: "/app/", Backend: "candidate", Percent: 50, Same: 3, Different: 1, Errors: 2, Dropped: 4,
		Last: []shadow.Difference{{Time: now, Request: "GET /app/x?<b> HTTP/1.1", Aspects: []string{"status", "body"}}}}
	s.Routes[0].Shadow = &Shadow{Stats: st, MatchRate: st.MatchRate()}
	h := Handler(func() Snapshot { return s })
	body := get(t, h, "GET", "/status").Body.String()
	for _, want := range []string{"candidate", "75.0%", "Last differences on /app/", "GET /app/x?&lt;b&gt; HTTP/1.1", "status, body"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	var got struct {
		Routes []struct {
			Shadow *struct {
				Different int64   `json:"different"`
				MatchRate float64 `json:"match_rate"`
			} `json:"shadow"`
		} `json:"routes"`
	}
	if err := json.Unmarshal(get(t, h, "GET", "/status.json").Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if sh := got.Routes[0].Shadow; sh == nil || sh.Different != 1 || sh.MatchRate != 0.75 {
		t.Errorf("json shadow %+v", sh)
	}
	if got.Routes[1].Shadow != nil {
		t.Error("an unshadowed route has a shadow in the JSON")
	}
}
