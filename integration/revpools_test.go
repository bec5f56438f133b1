package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/internal/freeport"
)

// TestDiscoveryCapacityPHPCGI: a discovered fastcgi instance with
// max_conns: auto (php-cgi -b with PHP_FCGI_CHILDREN=4, found through an
// A record) has its capacity asked as it joins the pool, not a health
// interval later (an hour here): the pool's first check round ran before
// the first lookup found it.
func TestDiscoveryCapacityPHPCGI(t *testing.T) {
	t.Parallel()
	port := freeport.PortOn(t, "127.0.0.5")
	root := capacityPHPCGI(t, fmt.Sprintf("127.0.0.5:%d", port))
	dns := discoveryStartDNS(t, "127.0.0.5 cgi.test\n")
	front, ops := freeAddr(t), freeAddr(t)
	startJunction(t, fmt.Sprintf(`metrics: {address: %q}
listeners:
  - {protocol: http, address: %q, backend: php}
backends:
  php:
    type: fastcgi
    discovery: {dns: "cgi.test:%d", resolver: %q}
    root: %q
    max_conns: auto
    max_conns_fallback: 1
    keepalive: auto
    health: {interval: 1h}
`, ops, front, port, dns.Addr, root), front, ops)
	in := capacityWait(t, ops, "capacity 4 learned", 15*time.Second, func(in capacityInstance) bool {
		return in.Capacity == 4
	})
	if in.MaxConns != 4 || in.Source != "dns" || !strings.HasPrefix(in.Name, "127.0.0.5:") {
		t.Errorf("instance = %+v", in)
	}
}
