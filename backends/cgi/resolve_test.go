package cgi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/junction-gw/junction/backends"
)

// TestRootParentReplacedBySymlink: a SCRIPT_FILENAME under the root's path
// is refused once a directory above the root was replaced by a symlink to
// elsewhere: the path no longer leads to the root resolved at start.
func TestRootParentReplacedBySymlink(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	script := []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nran'\n")
	for _, d := range []string{"site/root", "evil/root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "x.cgi"), script, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(dir, "site/root")
	b, _ := newBackend(t, func(o *Options) { o.Root = root })
	serve := func() error {
		r := withVars(request("GET", "/cgi-bin/x.cgi", nil, ""), "SCRIPT_FILENAME", root+"/x.cgi")
		return b.Serve(httptest.NewRecorder(), r)
	}
	if err := serve(); err != nil {
		t.Fatalf("before the swap: %v", err)
	}
	if err := os.Rename(filepath.Join(dir, "site"), filepath.Join(dir, "site.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "evil"), filepath.Join(dir, "site")); err != nil {
		t.Fatal(err)
	}
	var be *backends.Error
	if err := serve(); !errors.As(err, &be) || be.Status != http.StatusForbidden {
		t.Errorf("after the swap: %v, want a 403", err)
	}
}
