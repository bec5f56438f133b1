package discovery

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/junction-gw/junction/balancer"
)

// named is an instance backend that answers with its name.
type named string

func (n named) Serve(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("X-Instance", string(n))
	w.WriteHeader(http.StatusOK)
	return nil
}

// junctionPool is what one junction builds from a lookup: a pool whose
// members are the discovered instances.
func junctionPool(t *testing.T, set []Instance, o balancer.Options) *balancer.Pool {
	t.Helper()
	insts := make([]balancer.Instance, len(set))
	for i, in := range set {
		insts[i] = balancer.Instance{Name: in.Name, Backend: named(in.Name), Weight: in.Weight, Backup: in.Backup}
	}
	p, err := balancer.NewPool("app", insts, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func serve(t *testing.T, p *balancer.Pool, key string, cookie *http.Cookie) (string, *http.Cookie) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if key != "" {
		r.Header.Set("X-User", key)
	}
	if cookie != nil {
		r.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	if err := p.Serve(w, r); err != nil {
		t.Fatal(err)
	}
	var set *http.Cookie
	for _, c := range w.Result().Cookies() {
		set = c
	}
	return w.Header().Get("X-Instance"), set
}

// TestJunctionsAgree builds two pools, as two junctions do, from answers
// that list the same records in different orders (DNS servers rotate
// them): every key maps to the same instance in both, a sticky cookie set
// by one is honoured by the other, and removing one of the instances
// moves only the keys it had.
func TestJunctionsAgree(t *testing.T) {
	f := newFakeDNS()
	ips := []string{"10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14", "10.0.0.15"}
	f.hosts["app"] = addrs(ips...)
	f.srv["_app._tcp.svc"] = []*net.SRV{
		{Target: "a.svc.", Port: 8080, Weight: 1}, {Target: "b.svc.", Port: 8080, Weight: 1},
		{Target: "c.svc.", Port: 8080, Weight: 1}, {Target: "d.svc.", Port: 8080, Weight: 1},
	}
	for _, n := range []string{"a", "b", "c", "d"} {
		f.hosts[n+".svc"] = addrs("10.0.1." + fmt.Sprint(len(n)+int(n[0])-'a'))
	}
	for _, src := range []Options{{DNS: "app:8080", Resolver: f}, {SRV: "_app._tcp.svc", Resolver: f}} {
		t.Run(fmt.Sprint(src.DNS, src.SRV), func(t *testing.T) {
			o := balancer.Options{Policy: balancer.Hash, HashKey: "header:X-User"}
			setA := lookup(t, src)
			// The other junction's resolver answered in reverse order.
			f.set(func(f *fakeDNS) {
				a := f.hosts["app"]
				for i, j := 0, len(a)-1; i < j; i, j = i+1, j-1 {
					a[i], a[j] = a[j], a[i]
				}
				r := f.srv["_app._tcp.svc"]
				for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
					r[i], r[j] = r[j], r[i]
				}
			})
			setB := lookup(t, src)
			pa, pb := junctionPool(t, setA, o), junctionPool(t, setB, o)
			before := map[string]string{}
			for i := range 2000 {
				key := fmt.Sprint("user-", i)
				a, _ := serve(t, pa, key, nil)
				b, _ := serve(t, pb, key, nil)
				if a != b {
					t.Fatalf("key %s: %s through one junction, %s through the other", key, a, b)
				}
				before[key] = a
			}
			gone := setA[len(setA)/2].Name
			var fewer []Instance
			for _, in := range setA {
				if in.Name != gone {
					fewer = append(fewer, in)
				}
			}
			pc := junctionPool(t, fewer, o)
			moved, had := 0, 0
			for key, was := range before {
				now, _ := serve(t, pc, key, nil)
				switch {
				case was == gone:
					had++
					if now == gone {
						t.Fatalf("key %s still on removed %s", key, gone)
					}
				case now != was:
					moved++
				}
			}
			if moved != 0 || had == 0 {
				t.Errorf("removing %s moved %d keys it did not have (it had %d)", gone, moved, had)
			}

			so := balancer.Options{StickyCookie: "jx"}
			sa, sb := junctionPool(t, setA, so), junctionPool(t, setB, so)
			for range len(setA) {
				first, c := serve(t, sa, "", nil)
				if c == nil {
					t.Fatal("no sticky cookie set")
				}
				for range 3 {
					if again, _ := serve(t, sb, "", c); again != first {
						t.Fatalf("cookie %s=%s from %s went to %s through the other junction", c.Name, c.Value, first, again)
					}
				}
			}
		})
	}
}
