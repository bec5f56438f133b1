package cgi

import (
	"net/http/httptest"
	"os"
	"testing"
)

// BenchmarkResolve measures resolve, the part of a request that the
// interpreters, run_as owner and user_dir options change, on the same
// tree: a script two directories below the root. "plain" is the fast path
// every backend without those options takes.
func BenchmarkResolve(b *testing.B) {
	needRoot(b)
	root := ownedTree(b, []ownedEntry{
		{path: "a", mode: os.ModeDir | 0o755, uid: 1500, gid: 1500},
		{path: "a/sub", mode: os.ModeDir | 0o755, uid: 1500, gid: 1500},
		{path: "a/sub/x.cgi", mode: 0o755, uid: 1500, gid: 1500},
		{path: "a/sub/x.php", mode: 0o644, uid: 1500, gid: 1500},
		{path: "home", mode: os.ModeDir | 0o755, uid: 0, gid: 0},
		{path: "home/alice", mode: os.ModeDir | 0o755, uid: 1500, gid: 1500},
		{path: "home/alice/public_html", link: "../../a", uid: 1500, gid: 1500},
	})
	php := map[string][]string{".php": {"/bin/sh"}}
	for _, bc := range []struct {
		name   string
		target string
		mod    func(*Options)
	}{
		{"plain", "/cgi-bin/a/sub/x.cgi/pi", nil},
		{"interpreters/unmapped", "/cgi-bin/a/sub/x.cgi/pi", func(o *Options) { o.Interpreters = php }},
		{"interpreters/mapped", "/cgi-bin/a/sub/x.php/pi", func(o *Options) { o.Interpreters = php }},
		{"run_as", "/cgi-bin/a/sub/x.cgi/pi", func(o *Options) { o.RunAsOwner = true }},
		{"run_as+interpreters", "/cgi-bin/a/sub/x.php/pi", func(o *Options) { o.RunAsOwner, o.Interpreters = true, php }},
		{"user_dir", "/cgi-bin/~alice/sub/x.cgi/pi", func(o *Options) { o.UserDir = "public_html" }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			be, _ := newBackend(b, func(o *Options) {
				o.Root = root
				if bc.mod != nil {
					bc.mod(o)
				}
			})
			be.lookupUser = fakeUsers(root + "/home")
			r := httptest.NewRequest("GET", bc.target, nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := be.resolve(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
