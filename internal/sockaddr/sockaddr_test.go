package sockaddr

import "testing"

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in     string
		listen string // Network/Address from Parse, "" for an error
		dial   bool   // ParseDial accepts it too
	}{
		{"127.0.0.1:9000", "tcp 127.0.0.1:9000", true},
		{"[::1]:80", "tcp [::1]:80", true},
		{"localhost:80", "tcp localhost:80", true},
		{":8080", "tcp :8080", false},
		{"127.0.0.1:0", "tcp 127.0.0.1:0", false},
		{"127.0.0.1:70000", "", false},
		{"127.0.0.1:http", "", false},
		{"127.0.0.1", "", false},
		{"unix:/run/app.sock", "unix /run/app.sock", true},
		{"unix:@app", "unix @app", true},
		{"unix:@", "", false},
		{"unix:", "", false},
		{"unix:rel.sock", "", false},
		{"unix:/a\x00b", "", false},
		{"", "", false},
	} {
		a, err := Parse(tt.in)
		got := ""
		if err == nil {
			got = a.Network + " " + a.Address
		}
		if got != tt.listen {
			t.Errorf("Parse(%q) = %q, %v; want %q", tt.in, got, err, tt.listen)
		}
		if _, err := ParseDial(tt.in); (err == nil) != tt.dial {
			t.Errorf("ParseDial(%q) error = %v; want accepted=%v", tt.in, err, tt.dial)
		}
		if err == nil && a.String() != tt.in {
			t.Errorf("Parse(%q).String() = %q", tt.in, a.String())
		}
	}
}

func TestPath(t *testing.T) {
	if p, ok := (Addr{"unix", "/x.sock"}).Path(); !ok || p != "/x.sock" {
		t.Errorf("Path of unix:/x.sock = %q, %v", p, ok)
	}
	if _, ok := (Addr{"unix", "@x"}).Path(); ok {
		t.Error("an abstract socket has no path")
	}
	if _, ok := (Addr{"tcp", "127.0.0.1:1"}).Path(); ok {
		t.Error("a TCP address has no path")
	}
}
