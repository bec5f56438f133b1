package config

import (
	"strings"
	"testing"
)

func TestShadowValidation(t *testing.T) {
	base := `
listeners: [{protocol: scgi, address: "127.0.0.1:4000"}]
backends:
  current: {type: cgi, allow_root: true, root: /srv/cgi}
  candidate: {type: http, instances: ["127.0.0.1:8080"]}
routes:
  - prefix: /app/
    backend: current
`
	for _, c := range []struct{ shadow, want string }{
		{`{backend: candidate}`, ""},
		{`{backend: candidate, percent: 25, compare: [status, location, "header:X-Version"], queue: 8, max_body: 4096, timeout: 5s}`, ""},
		{`{}`, "routes[0].shadow.backend: a backend name is required"},
		{`{backend: nope}`, `routes[0].shadow.backend: no backend named "nope"`},
		{`{backend: current}`, `routes[0].shadow.backend: "current" is the route's own backend`},
		{`{backend: candidate, percent: 101}`, "routes[0].shadow.percent: 101 is not between 0 and 100"},
		{`{backend: candidate, compare: [colour]}`, `routes[0].shadow.compare[0]: "colour" is not one of`},
		{`{backend: candidate, compare: ["header:bad name"]}`, `routes[0].shadow.compare[0]`},
		{`{backend: candidate, methods: [get]}`, `routes[0].shadow.methods[0]: "get" is not a method name`},
		{`{backend: candidate, queue: -1}`, "routes[0].shadow.queue"},
		{`{backend: candidate, percent: .nan}`, "routes[0].shadow.percent: NaN is not between 0 and 100"},
		{`{backend: candidate, queue: 1000000000000000}`, "routes[0].shadow.queue: 1000000000000000 is more than 65536"},
		{`{backend: candidate, colour: red}`, "colour"},
	} {
		_, err := Parse([]byte(base+"    shadow: "+c.shadow+"\n"), "yaml")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.shadow, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want it to say %q", c.shadow, err, c.want)
		}
	}
}

func TestShadowUnsafeMethodsWarn(t *testing.T) {
	cfg, err := Parse([]byte(`
listeners: [{protocol: scgi, address: "127.0.0.1:4000"}]
backends:
  current: {type: cgi, allow_root: true, root: /srv/cgi}
  candidate: {type: http, instances: ["127.0.0.1:8080"]}
routes:
  - {prefix: /app/, backend: current, shadow: {backend: candidate, methods: [GET, POST]}}
  - {prefix: /ro/, backend: current, shadow: {backend: candidate}}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "routes[0].shadow.methods: POST requests to /app/ run twice") {
		t.Errorf("warnings %q", w)
	}
	if p := cfg.Routes[1].Shadow.PercentOrDefault(); p != 100 {
		t.Errorf("default percent %v", p)
	}
}
