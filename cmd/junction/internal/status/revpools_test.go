package status

import (
	"strings"
	"testing"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/balancer"
)

// TestEscapesPeerText: what DNS, an instance or php-fpm said (names,
// errors, php-fpm's "process manager") reaches the page as text.
func TestEscapesPeerText(t *testing.T) {
	const evil = `"><img src=x onerror=alert(1)>`
	ps := balancer.PoolStatus{Name: "app", Instances: []balancer.InstanceStatus{{
		Name: "n" + evil + ":80", LastError: "err" + evil, AutoMaxConns: true, CapacityKnown: true,
		Capacity: backends.Capacity{Why: "pm = " + evil, Idle: -1}, CapacityError: evil, Limit: 2, Source: "srv",
	}}}
	p := FromPool(ps)
	p.Source = "srv"
	p.Discovery = &Discovery{Name: "_x._tcp.x", LastError: evil, Pending: map[string]string{"p" + evil: "e" + evil}}
	rec := get(t, Handler(func() Snapshot { return Snapshot{Now: now, Pools: []Pool{p}} }), "GET", "/status")
	if body := rec.Body.String(); strings.Contains(body, "<img") {
		t.Errorf("peer text not escaped:\n%s", body)
	}
}
