package status

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/junction-gw/junction/backends/authorizer"
)

// TestRouteAuthorizerAndSettings: a route's authorizer (instances, script,
// outcome counts) and its own cgi settings are on the page, escaped, and
// in the JSON; a route with neither shows nothing more.
func TestRouteAuthorizerAndSettings(t *testing.T) {
	s := sample()
	s.Routes[0].Authorizer = &Authorizer{Instances: []string{"unix:/run/auth.sock", "127.0.0.1:9001"}, Script: "/srv/auth/<check>.php",
		Stats: authorizer.Stats{Allowed: 12, Denied: 3, Errors: 1}}
	s.Routes[1].CGI = &RouteCGI{TimeoutSeconds: 90, MaxConcurrent: 2, Limits: &Limits{CPUSeconds: 10, MemoryBytes: 64 << 20, Nice: 5}}
	h := Handler(func() Snapshot { return s })
	body := get(t, h, "GET", "/status").Body.String()
	for _, want := range []string{
		"<span>/app/</span><span>authorizer unix:/run/auth.sock, 127.0.0.1:9001 · /srv/auth/&lt;check&gt;.php · allowed 12, denied 3, errors 1",
		"<span>/cgi-bin/</span><span>own settings: timeout 1m30s · max_concurrent 2 · limits cpu 10s, memory 64 MiB, nice 5</span>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<check>") {
		t.Error("the script name is not escaped")
	}
	if strings.Count(body, "authorizer ") != 1 || strings.Count(body, "own settings") != 1 {
		t.Errorf("a route without an authorizer or settings of its own shows some:\n%s", body)
	}

	var got struct {
		Routes []map[string]json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal(get(t, h, "GET", "/status.json").Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for i, want := range []map[string]string{
		{"authorizer": `{"instances":["unix:/run/auth.sock","127.0.0.1:9001"],"script":"/srv/auth/\u003ccheck\u003e.php","allowed":12,"denied":3,"errors":1}`},
		{"cgi": `{"timeout_seconds":90,"max_concurrent":2,"limits":{"cpu_seconds":10,"memory_bytes":67108864,"nice":5}}`},
	} {
		for _, key := range []string{"authorizer", "cgi"} {
			raw, ok := got.Routes[i][key]
			if _, wanted := want[key]; !wanted {
				if ok {
					t.Errorf("routes[%d] has %s: %s", i, key, raw)
				}
				continue
			}
			if got, want := canonical(t, raw), canonical(t, []byte(want[key])); got != want {
				t.Errorf("routes[%d].%s = %s, want %s", i, key, got, want)
			}
		}
	}
}

// canonical re-encodes JSON: sorted keys, no indentation.
func canonical(t *testing.T, raw []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSettingsText(t *testing.T) {
	for _, tt := range []struct {
		c    *RouteCGI
		want string
	}{
		{nil, ""},
		{&RouteCGI{TimeoutSeconds: 0.5}, "timeout 500ms"},
		{&RouteCGI{MaxConcurrent: 1}, "max_concurrent 1"},
		{&RouteCGI{Limits: &Limits{Processes: 20, OpenFiles: 64, FileSizeBytes: 1000}}, "limits processes 20, open_files 64, file_size 1000 B"},
		{&RouteCGI{Limits: &Limits{MemoryBytes: 3 << 30, FileSizeBytes: 5 << 10}}, "limits memory 3 GiB, file_size 5 KiB"},
	} {
		if got := settings(tt.c); got != tt.want {
			t.Errorf("settings(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}
