package integration

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTruncatedPostsDoNotEjectBehindApacheAJP is Apache (mod_proxy_ajp) →
// junction (AJP listener) → an HTTP pool of two test-app instances, with
// clients that declare a 100 kB POST body, send 100 bytes of it and
// disconnect. Their bodies fail on the client's side: junction must not
// count that against the instances. After six of them (enough to eject
// both instances twice over with fail_threshold 3), both instances still
// take traffic.
func TestTruncatedPostsDoNotEjectBehindApacheAJP(t *testing.T) {
	a1, _ := startAppInstance(t, "a1")
	a2, _ := startAppInstance(t, "a2")
	ajp, front := freeAddr(t), freeAddr(t)
	// A long first ejection: an instance ejected by the truncated POSTs
	// would still be out when the GETs below run.
	j := startJunction(t, fmt.Sprintf(`
listeners:
  - {protocol: ajp, address: %q, backend: app}
backends:
  app:
    type: http
    instances: [%q, %q]
    balance: round_robin
    health: {fail_threshold: 3, eject_base: 30s}
`, ajp, a1, a2), ajp)
	startApache(t, []string{"proxy", "proxy_ajp"}, fmt.Sprintf(`Listen %s
LimitRequestBody 0
ProxyPass / ajp://%s/
`, front, ajp), front)

	const posts = 6
	for i := range posts {
		c, err := net.DialTimeout("tcp", front, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /upload/%d HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n%s",
			i, front, strings.Repeat("x", 100))
		// Let Apache forward the head and the first chunk before the
		// client goes.
		time.Sleep(100 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Each truncated POST ends in one "request failed" line once junction
	// has given up on it.
	if !waitFor(15*time.Second, func() bool { return strings.Count(j.Output(), "request failed") >= posts }) {
		t.Fatalf("junction logged %d failed requests, want %d:\n%s", strings.Count(j.Output(), "request failed"), posts, j.Output())
	}
	seen := map[string]int{}
	for i := range 10 {
		r := httpGet(t, fmt.Sprintf("http://%s/hello/%d", front, i))
		if r.Status != 200 {
			t.Fatalf("GET /hello/%d = %d %q", i, r.Status, r.Body)
		}
		seen[strings.Fields(r.Body)[0]]++
	}
	if seen["a1"] == 0 || seen["a2"] == 0 {
		t.Errorf("answers after %d truncated POSTs = %v, want both a1 and a2 (an instance was ejected for the clients' failures)", posts, seen)
	}
	for _, line := range strings.Split(j.Output(), "\n") {
		if strings.Contains(line, "request failed") && !strings.Contains(line, "status=400") && !strings.Contains(line, "status=499") {
			t.Errorf("a truncated POST was not logged as the client's failure (400 or 499): %s", line)
		}
		if strings.Contains(line, "instance ejected") {
			t.Errorf("an instance was ejected: %s", line)
		}
	}
}
