package config

import (
	"slices"
	"strings"
	"testing"
)

func TestListenerAllow(t *testing.T) {
	tests := []struct {
		name      string
		listeners string
		want      []string // substrings of the error; none: valid
	}{
		{"ips and cidrs of both families", `
  - {protocol: scgi, address: "0.0.0.0:4000", backend: s, allow: [127.0.0.1, 10.0.0.0/8, "::1", "fd00::/8", "10.1.2.3/16"]}
  - {protocol: fastcgi, address: "[::]:9000", backend: s, allow: ["192.0.2.7"]}
  - {protocol: ajp, address: "127.0.0.1:8009", backend: s, allow: ["127.0.0.1"]}
  - {protocol: http, address: ":8080", backend: s, allow: ["2001:db8::/32"]}
  - {protocol: scgi, address: "fd:3", backend: s, allow: ["127.0.0.1"]}`, nil},
		{"not an address", `
  - {protocol: scgi, address: "127.0.0.1:4000", backend: s}
  - {protocol: scgi, address: "0.0.0.0:4001", backend: s, allow: ["10.0.0.300", "10.0.0.0/33", "localhost", "10.0.0.1"]}`,
			[]string{
				`listeners[1].allow[0]: "10.0.0.300" is not an IP or CIDR`,
				`listeners[1].allow[1]: "10.0.0.0/33" is not an IP or CIDR`,
				`listeners[1].allow[2]: "localhost" is not an IP or CIDR`,
			}},
		{"unix socket", `
  - {protocol: scgi, address: "unix:/run/j.sock", backend: s, allow: ["127.0.0.1"]}`,
			[]string{"listeners[0].allow: applies to TCP listeners only"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("listeners:"+tt.listeners+"\nbackends:\n  s: {type: cgi, root: /srv}\n"), "yaml")
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("err = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "allow[3]") {
				t.Errorf("a valid entry was reported: %v", err)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	cfg, err := Parse([]byte(`
listeners:
  - {protocol: scgi, address: "0.0.0.0:4000", backend: s}
  - {protocol: fastcgi, address: ":9000", backend: s}
  - {protocol: scgi, address: "192.0.2.1:4000", backend: s}
  - {protocol: fastcgi, address: "[::]:9001", backend: s, allow: ["::1"]}
  - {protocol: scgi, address: "127.0.0.1:4001", backend: s}
  - {protocol: scgi, address: "localhost:4002", backend: s}
  - {protocol: fastcgi, address: "[::1]:9002", backend: s}
  - {protocol: scgi, address: "unix:/run/j.sock", backend: s}
  - {protocol: fastcgi, address: "fd:0", backend: s}
  - {protocol: http, address: "0.0.0.0:8080", backend: s}
  - {protocol: ajp, address: "0.0.0.0:8009", backend: s, secret: x}
backends:
  s: {type: cgi, root: /srv}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"listeners[0].allow: scgi listener on 0.0.0.0:4000 accepts any client; set allow",
		"listeners[1].allow: fastcgi listener on :9000 accepts any client; set allow",
		"listeners[2].allow: scgi listener on 192.0.2.1:4000 accepts any client; set allow",
	}
	if got := cfg.Warnings(); !slices.Equal(got, want) {
		t.Errorf("Warnings() =\n%q\nwant\n%q", got, want)
	}
	if got := Default().Warnings(); len(got) != 0 {
		t.Errorf("the built-in configuration warns: %q", got)
	}
}
