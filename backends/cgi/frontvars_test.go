package cgi

import (
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/junction-gw/junction/backends"
)

// TestFrontServerVars resolves the variables each stock front server
// really sends (captured from them; see frontvars.go) for
// /cgi-bin/env.cgi/a%20b/c?x=1, with the front server's document root
// elsewhere (docroot) or the parent of junction's root (here). Every one
// must run env.cgi with SCRIPT_NAME=/cgi-bin/env.cgi and PATH_INFO=/a b/c
// with no per-client setting.
func TestFrontServerVars(t *testing.T) {
	const docroot = "/srv/www"
	const uri = "/cgi-bin/env.cgi/a%20b/c?x=1"
	b, _ := newBackend(t, nil)
	// here is a document root whose /root is junction's root, for the
	// cases where the front server's tree and junction's are the same.
	here := filepath.Dir(testRoot)
	bHere, _ := newBackend(t, func(o *Options) { o.URLPrefix = "/root/" })
	tests := []struct {
		name     string
		b        *Backend
		vars     []string
		sname    string
		pathInfo string
		file     string
		status   int
	}{
		{name: "apache mod_proxy_scgi", vars: []string{
			"DOCUMENT_ROOT", "/var/www/html",
			"SCRIPT_FILENAME", "proxy:scgi://127.0.0.1:4000/cgi-bin/env.cgi/a%20b/c",
			"REQUEST_URI", uri, "SCRIPT_NAME", "/cgi-bin/env.cgi/a b/c"}},
		{name: "apache mod_proxy_scgi balancer", vars: []string{
			"SCRIPT_FILENAME", "proxy:balancer://cgi/cgi-bin/env.cgi/a%20b/c",
			"REQUEST_URI", uri, "SCRIPT_NAME", "/cgi-bin/env.cgi/a b/c"}},
		{name: "lighttpd check-local disable", vars: []string{
			"REQUEST_URI", uri, "SCRIPT_NAME", "/cgi-bin/env.cgi", "PATH_INFO", "/a b/c",
			"PATH_TRANSLATED", docroot + "/a b/c", "SCRIPT_FILENAME", docroot + "/cgi-bin/env.cgi",
			"DOCUMENT_ROOT", docroot}},
		{name: "lighttpd script in a subdirectory", vars: []string{
			"REQUEST_URI", "/cgi-bin/sub/deep.cgi/p", "SCRIPT_NAME", "/cgi-bin/sub", "PATH_INFO", "/deep.cgi/p",
			"SCRIPT_FILENAME", docroot + "/cgi-bin/sub", "DOCUMENT_ROOT", docroot},
			sname: "/cgi-bin/sub/deep.cgi", pathInfo: "/p", file: "sub/deep.cgi"},
		{name: "lighttpd subdirectory inside the root", b: bHere, vars: []string{
			"REQUEST_URI", "/root/sub/deep.cgi/p", "SCRIPT_NAME", "/root/sub", "PATH_INFO", "/deep.cgi/p",
			"SCRIPT_FILENAME", here + "/root/sub", "DOCUMENT_ROOT", here + "/"},
			sname: "/root/sub/deep.cgi", pathInfo: "/p", file: "sub/deep.cgi"},
		{name: "haproxy fcgi-app", vars: []string{
			"DOCUMENT_ROOT", docroot, "SCRIPT_NAME", "/cgi-bin/env.cgi/a b/c", "REQUEST_URI", uri,
			"SCRIPT_FILENAME", docroot + "/cgi-bin/env.cgi/a b/c"}},
		{name: "haproxy fcgi-app inside the root", b: bHere, vars: []string{
			"DOCUMENT_ROOT", here, "SCRIPT_NAME", "/root/env.cgi/a b/c", "REQUEST_URI", "/root/env.cgi/a%20b/c",
			"SCRIPT_FILENAME", here + "/root/env.cgi/a b/c"},
			sname: "/root/env.cgi"},
		{name: "caddy split", vars: []string{
			"PATH_INFO", "/a b/c", "SCRIPT_FILENAME", docroot + "/cgi-bin/env.cgi", "DOCUMENT_ROOT", docroot,
			"PATH_TRANSLATED", docroot + "/a b/c", "DOCUMENT_URI", "/cgi-bin/env.cgi",
			"SCRIPT_NAME", "/cgi-bin/env.cgi", "REQUEST_URI", uri}},
		{name: "h2o", vars: []string{
			"SCRIPT_NAME", "", "PATH_INFO", "/cgi-bin/env.cgi/a b/c", "REQUEST_URI", uri,
			"DOCUMENT_ROOT", docroot, "PATH_TRANSLATED", docroot + "/cgi-bin/env.cgi/a b/c"}},

		// What must stay refused.
		{name: "configured filename outside", vars: []string{
			"DOCUMENT_ROOT", docroot, "SCRIPT_NAME", "/cgi-bin/env.cgi", "REQUEST_URI", uri,
			"SCRIPT_FILENAME", testOutside + "/evil.cgi"}, status: 403},
		{name: "derived filename outside, URL outside the prefix", vars: []string{
			"DOCUMENT_ROOT", filepath.Dir(testOutside), "SCRIPT_NAME", "/outside/evil.cgi",
			"SCRIPT_FILENAME", testOutside + "/evil.cgi"}, status: 404},
		{name: "derived filename leaving by symlink", b: bHere, vars: []string{
			"DOCUMENT_ROOT", here, "SCRIPT_NAME", "/root/link-out.cgi",
			"SCRIPT_FILENAME", here + "/root/link-out.cgi"}, status: 403},
		{name: "derived filename not executable", b: bHere, vars: []string{
			"DOCUMENT_ROOT", here, "SCRIPT_NAME", "/root/plain.txt",
			"SCRIPT_FILENAME", here + "/root/plain.txt"}, status: 403},
		{name: "derived filename with dotdot in the URL", vars: []string{
			"DOCUMENT_ROOT", docroot, "SCRIPT_NAME", "/cgi-bin/../outside/evil.cgi",
			"SCRIPT_FILENAME", docroot + "/cgi-bin/../outside/evil.cgi"}, status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.sname == "" && tt.status == 0 {
				tt.sname = "/cgi-bin/env.cgi"
			}
			if tt.pathInfo == "" && tt.status == 0 && tt.file == "" {
				tt.pathInfo = "/a b/c"
			}
			if tt.file == "" {
				tt.file = "env.cgi"
			}
			bb := b
			if tt.b != nil {
				bb = tt.b
			}
			s, err := bb.resolve(withVars(httptest.NewRequest("GET", "/x", nil), tt.vars...))
			if tt.status != 0 {
				if err == nil || backends.Status(err) != tt.status {
					t.Fatalf("err = %v (status %d), want status %d; resolved %+v", err, backends.Status(err), tt.status, s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != tt.sname || s.PathInfo != tt.pathInfo || s.Filename != filepath.Join(testRoot, tt.file) {
				t.Errorf("got %q %q %q, want %q %q %q", s.Name, s.PathInfo, s.Filename, tt.sname, tt.pathInfo, tt.file)
			}
		})
	}
}
