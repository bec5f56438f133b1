package vars

import (
	"context"
	"testing"
)

func TestValidToken(t *testing.T) {
	for s, want := range map[string]bool{
		"GET": true, "M-SEARCH": true, "X_Y": true, "!#$%&'*+-.^_`|~09azAZ": true,
		"": false, "GET /": false, "A:B": false, "A\r": false, "(x)": false, "ü": false, "a\x7f": false,
	} {
		if got := ValidToken(s); got != want {
			t.Errorf("ValidToken(%q) = %v", s, got)
		}
	}
}

func TestValidValue(t *testing.T) {
	for s, want := range map[string]bool{
		"": true, "text/html; q=0.9": true, "a\tb": true, "ü": true, "\x01\x0b\x0c\x7f": true,
		"\r": false, "a\nb": false, "a\x00": false, "ok\r\nX: y": false,
	} {
		if got := ValidValue(s); got != want {
			t.Errorf("ValidValue(%q) = %v", s, got)
		}
	}
}

func TestHeaderVar(t *testing.T) {
	tests := []struct {
		key, want string
		ok        bool
	}{
		{"Accept", "HTTP_ACCEPT", true},
		{"X-Forwarded-For", "HTTP_X_FORWARDED_FOR", true},
		{"x-custom-2", "HTTP_X_CUSTOM_2", true},
		{"Host", "HTTP_HOST", true},
		{"Authorization", "HTTP_AUTHORIZATION", true},
		{"Proxy", "", false}, // httpoxy
		{"proxy", "", false},
		{"X_Foo", "", false}, // would pose as X-Foo
		{"X.Dot", "", false},
		{"", "", false},
		{"Content-Type", "", false}, // CONTENT_TYPE
		{"content-length", "", false},
	}
	for _, tt := range tests {
		got, ok := HeaderVar(tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("HeaderVar(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
	// Every common header maps without allocating, and back again.
	for cgi, key := range commonHeaders {
		if key == "Content-Type" || key == "Content-Length" {
			continue
		}
		if n := testing.AllocsPerRun(10, func() { HeaderVar(key) }); n != 0 {
			t.Errorf("HeaderVar(%q) allocates", key)
		}
		if name, _ := HeaderVar(key); name != "HTTP_"+cgi || headerKey(cgi) != key {
			t.Errorf("%s: %s, back %s", key, name, headerKey(cgi))
		}
	}
}

// source counts how the lazy context uses it.
type source struct {
	v              Vars
	made, lookedUp int
}

func (s *source) Vars() Vars { s.made++; return s.v }
func (s *source) Lookup(name string) (string, bool) {
	s.lookedUp++
	return s.v.Lookup(name)
}

func TestLookup(t *testing.T) {
	src := &source{v: pairs("REMOTE_USER", "alice", "A", "1")}
	ctx := NewLazyContext(context.Background(), src)
	if u, ok := Lookup(ctx, "REMOTE_USER"); u != "alice" || !ok {
		t.Errorf("Lookup = %q, %v", u, ok)
	}
	if _, ok := Lookup(ctx, "MISSING"); ok {
		t.Error("missing variable found")
	}
	if src.made != 0 || src.lookedUp != 2 {
		t.Errorf("made %d times, looked up %d times; want 0, 2", src.made, src.lookedUp)
	}
	if FromContext(ctx).Get("A") != "1" || FromContext(ctx).Get("A") != "1" || src.made != 1 {
		t.Errorf("made %d times, want once", src.made)
	}
	// Once made, lookups read the made variables.
	if a, _ := Lookup(ctx, "A"); a != "1" || src.lookedUp != 2 {
		t.Errorf("Lookup after the render: %q, source asked %d times", a, src.lookedUp)
	}

	plain := NewContext(context.Background(), pairs("REMOTE_USER", "bob"))
	if u, _ := Lookup(plain, "REMOTE_USER"); u != "bob" {
		t.Errorf("Lookup = %q", u)
	}
	if _, ok := Lookup(context.Background(), "REMOTE_USER"); ok {
		t.Error("variable found in a context without any")
	}
}
