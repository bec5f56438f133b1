package cgi

import (
	"net/http/httptest"
	"testing"
)

// TestSingleScriptFrontSplit checks that a single script mounted at
// url_prefix /app sees SCRIPT_NAME=/app and PATH_INFO=the rest of the path
// whatever split the front server made of the same URL, /app/x/y, so that an
// application (Django through wsgiref's CGIHandler, git-http-backend) routes
// alike behind every front server; a split outside the prefix is the front
// server's configuration and is kept.
func TestSingleScriptFrontSplit(t *testing.T) {
	b, _ := newBackend(t, func(o *Options) { o.Script = testRoot + "/env.cgi"; o.Root = ""; o.URLPrefix = "/app/" })
	tests := []struct {
		name           string
		target         string
		vars           []string
		sname, pathInf string
	}{
		{"nginx scgi_params (nothing)", "/app/x/y", nil, "/app", "/x/y"},
		{"nginx fastcgi_params (whole path as SCRIPT_NAME)", "/app/x/y", []string{"SCRIPT_NAME", "/app/x/y"}, "/app", "/x/y"},
		{"Apache mod_proxy_scgi (whole path, PATH_INFO empty)", "/app/x/y", []string{"SCRIPT_NAME", "/app/x/y", "PATH_INFO", ""}, "/app", "/x/y"},
		{"lighttpd (prefix and one segment)", "/app/x/y", []string{"SCRIPT_NAME", "/app/x", "PATH_INFO", "/y"}, "/app", "/x/y"},
		{"h2o (all PATH_INFO)", "/app/x/y", []string{"SCRIPT_NAME", "", "PATH_INFO", "/app/x/y"}, "/app", "/x/y"},
		{"the prefix alone", "/app", []string{"SCRIPT_NAME", "/app"}, "/app", ""},
		{"a longer segment is not the prefix", "/apple/x", []string{"SCRIPT_NAME", "/apple/x"}, "/apple/x", ""},
		{"configured split outside the prefix", "/git/r.git/info/refs", []string{"SCRIPT_NAME", "/git", "PATH_INFO", "/r.git/info/refs"}, "/git", "/r.git/info/refs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := withVars(httptest.NewRequest("GET", tt.target, nil), tt.vars...)
			s, err := b.resolve(r)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != tt.sname || s.PathInfo != tt.pathInf {
				t.Errorf("SCRIPT_NAME %q PATH_INFO %q, want %q %q", s.Name, s.PathInfo, tt.sname, tt.pathInf)
			}
		})
	}
}
