package balancer

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestPolicyOrder(t *testing.T) {
	tests := []struct {
		name    string
		policy  string
		weights []int
		n       int
		want    string
	}{
		{"round robin", RoundRobin, []int{1, 1, 1}, 7, "abcabca"},
		{"round robin ignores weight", RoundRobin, []int{5, 1, 1}, 4, "abca"},
		// nginx's smooth weighted round robin for 5:1:1.
		{"weighted 5:1:1", WeightedRoundRobin, []int{5, 1, 1}, 14, "aabacaaaabacaa"},
		{"weighted 2:1", WeightedRoundRobin, []int{2, 1}, 6, "abaaba"},
		{"least conn idle rotates", LeastConn, []int{1, 1, 1}, 4, "abca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, insts := fakes("a", "b", "c")
			insts = insts[:len(tt.weights)]
			for i := range insts {
				insts[i].Weight = tt.weights[i]
			}
			p := newPool(t, insts, Options{Policy: tt.policy})
			if got := strings.Join(sequence(t, p, tt.n), ""); got != tt.want {
				t.Errorf("order %q, want %q", got, tt.want)
			}
		})
	}
}

// hold starts a request that blocks on f until the returned func is called.
func hold(t *testing.T, p *Pool, fs []*fake) (who string, release func()) {
	t.Helper()
	start := make(chan string, 1)
	gate := make(chan struct{})
	for _, f := range fs {
		f.mu.Lock()
		f.start, f.hold = start, gate
		f.mu.Unlock()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err, _ := do(p, get("/")); err != nil {
			t.Error(err)
		}
	}()
	who = <-start
	for _, f := range fs {
		f.mu.Lock()
		f.start, f.hold = nil, nil
		f.mu.Unlock()
	}
	return who, func() { close(gate); <-done }
}

func TestLeastConnHeld(t *testing.T) {
	noLeaks(t)
	fs, insts := fakes("a", "b", "c")
	insts[2].Weight = 2
	p := newPool(t, insts, Options{Policy: LeastConn})
	var releases []func()
	var held []string
	for range 4 {
		who, rel := hold(t, p, fs)
		held = append(held, who)
		releases = append(releases, rel)
	}
	// a, b, c (all idle, in order), then c again: 1/2 < 1/1.
	if want := []string{"a", "b", "c", "c"}; !slices.Equal(held, want) {
		t.Errorf("held on %v, want %v", held, want)
	}
	// Now a=1, b=1, c=2(weight 2): tie between all; rotation continues at a.
	if got := sequence(t, p, 1); got[0] != "a" {
		t.Errorf("next went to %s, want a", got[0])
	}
	releases[0]() // a idle
	releases[1]() // b idle
	// The cursor is past a (last chosen), so b comes first.
	if got := sequence(t, p, 2); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("after release: %v, want [b a]", got)
	}
	for _, r := range releases[2:] {
		r()
	}
}

func TestRandomTwo(t *testing.T) {
	noLeaks(t)
	fs, insts := fakes("a", "b", "c")
	var rolls []int
	p := newPool(t, insts, Options{Policy: RandomTwo, Rand: func(n int) int {
		v := rolls[0]
		rolls = rolls[1:]
		if v >= n {
			t.Fatalf("roll %d out of [0,%d)", v, n)
		}
		return v
	}})
	// Hold one request on b (a vs b, tie goes to the first pick).
	rolls = []int{1, 0}
	who, rel := hold(t, p, fs)
	if who != "b" {
		t.Fatalf("first pick %s, want b", who)
	}
	defer rel()
	tests := []struct {
		rolls []int
		want  string
	}{
		{[]int{1, 0}, "a"}, // b(1) vs a(0): a
		{[]int{0, 0}, "a"}, // a vs b (j skips i): a
		{[]int{2, 1}, "c"}, // c vs b: c
		{[]int{1, 1}, "c"}, // b vs c: c
	}
	for _, tt := range tests {
		rolls = tt.rolls
		if got := sequence(t, p, 1)[0]; got != tt.want {
			t.Errorf("rolls %v: %s, want %s", tt.rolls, got, tt.want)
		}
	}
}

func TestHashStableAndMinimalMovement(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	_, insts := fakes(names...)
	p := newPool(t, insts, Options{Policy: Hash, HashKey: "header:X-User"})
	route := func() map[string]string {
		m := map[string]string{}
		for i := range 500 {
			r := get("/")
			key := fmt.Sprint("user", i)
			r.Header.Set("X-User", key)
			name, err, _ := do(p, r)
			if err != nil {
				t.Fatal(err)
			}
			m[key] = name
		}
		return m
	}
	first, again := route(), route()
	count := map[string]int{}
	for k, v := range first {
		if again[k] != v {
			t.Fatalf("key %s moved %s → %s without a change", k, v, again[k])
		}
		count[v]++
	}
	for _, n := range names {
		if count[n] < 50 {
			t.Errorf("instance %s got %d of 500 keys: poor spread %v", n, count[n], count)
		}
	}
	if err := p.Replace(append(insts[:2:2], insts[3:]...)); err != nil { // drop c
		t.Fatal(err)
	}
	after := route()
	moved := 0
	for k, v := range first {
		switch {
		case v == "c" && after[k] == "c":
			t.Fatalf("key %s still on removed c", k)
		case v != "c" && after[k] != v:
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d keys not on c moved", moved)
	}
}

func TestHashKeys(t *testing.T) {
	tests := []struct {
		spec string
		req  func(*http.Request)
		want string
	}{
		{"ip", func(r *http.Request) { r.RemoteAddr = "192.0.2.7:5555" }, "192.0.2.7"},
		{"ip", func(r *http.Request) { r.RemoteAddr = "[2001:db8::1]:80" }, "2001:db8::1"},
		{"header:X-Key", func(r *http.Request) { r.Header.Set("X-Key", "k1") }, "k1"},
		{"cookie:sid", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "sid", Value: "s9"}) }, "s9"},
		{"cookie:sid", func(r *http.Request) {}, ""},
	}
	for _, tt := range tests {
		r := get("/")
		tt.req(r)
		if got := hashKeyFunc(tt.spec)(r); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.spec, got, tt.want)
		}
	}
	for _, bad := range []string{"", "header:", "body", "cookie"} {
		if _, err := NewPool("x", nil, Options{Policy: Hash, HashKey: bad}); err == nil {
			t.Errorf("hash_key %q accepted", bad)
		}
	}
}
