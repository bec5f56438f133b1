package cgi

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/junction-gw/junction/backends"
)

// shScript prints $0 (the script path the interpreter got), its arguments
// and a few variables.
const shScript = `printf 'Content-Type: text/plain\r\n\r\n'
printf 'argv0=%s args=%s pi=%s sn=%s sf=%s rs=%s\n' "$0" "$*" "$PATH_INFO" "$SCRIPT_NAME" "$SCRIPT_FILENAME" "$REDIRECT_STATUS"
`

// interpRoot lays out a root with scripts for the interpreter tests and
// returns it, symlinks resolved.
func interpRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
		body string
	}{
		{"page.sh", 0o644, shScript},
		{"UPPER.SH", 0o644, shScript},
		{"sub/deep.sh", 0o600, shScript},
		{"dir.sh/inner.sh", 0o644, shScript},
		{"plain.txt", 0o644, "text"},
		{"exec.cgi", 0o755, "#!/bin/sh\n" + shScript},
		{"opts.dash", 0o644, shScript},
		{"unread.sh", 0o200, shScript},
	} {
		p := filepath.Join(root, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	if err := os.Symlink("page.sh", filepath.Join(root, "link.sh")); err != nil {
		t.Fatal(err)
	}
	return root
}

var testInterpreters = map[string][]string{
	".sh":   {"/bin/sh"},
	".dash": {"/bin/sh", "-e"},
}

// TestInterpreterResolve: a file with a mapped extension is a script when
// it is readable, without an exec bit; its name ends the script part of
// the path; unmapped files still need the exec bit.
func TestInterpreterResolve(t *testing.T) {
	root := interpRoot(t)
	b, _ := newBackend(t, func(o *Options) { o.Root = root; o.Interpreters = testInterpreters })
	tests := []struct {
		name, target string
		vars         []string
		status       int
		sname, pi    string
		file         string
		argv         []string // nil: the file itself
	}{
		{name: "mapped, not executable", target: "/cgi-bin/page.sh", sname: "/cgi-bin/page.sh", file: "page.sh", argv: []string{"/bin/sh"}},
		{name: "extension ends the script part", target: "/cgi-bin/page.sh/extra/x.sh", sname: "/cgi-bin/page.sh", pi: "/extra/x.sh",
			file: "page.sh", argv: []string{"/bin/sh"}},
		{name: "extension in any case", target: "/cgi-bin/UPPER.SH/p", sname: "/cgi-bin/UPPER.SH", pi: "/p", file: "UPPER.SH", argv: []string{"/bin/sh"}},
		{name: "command with arguments", target: "/cgi-bin/opts.dash", sname: "/cgi-bin/opts.dash", file: "opts.dash", argv: []string{"/bin/sh", "-e"}},
		{name: "deeper, owner-readable only", target: "/cgi-bin/sub/deep.sh", sname: "/cgi-bin/sub/deep.sh", file: "sub/deep.sh", argv: []string{"/bin/sh"}},
		{name: "a directory with the extension is walked", target: "/cgi-bin/dir.sh/inner.sh/i", sname: "/cgi-bin/dir.sh/inner.sh", pi: "/i",
			file: "dir.sh/inner.sh", argv: []string{"/bin/sh"}},
		{name: "symlink named like the extension", target: "/cgi-bin/link.sh", sname: "/cgi-bin/link.sh", file: "page.sh", argv: []string{"/bin/sh"}},
		{name: "unmapped executable runs itself", target: "/cgi-bin/exec.cgi/q", sname: "/cgi-bin/exec.cgi", pi: "/q", file: "exec.cgi"},
		{name: "unmapped, not executable", target: "/cgi-bin/plain.txt", status: 403},
		{name: "unmapped file in the middle", target: "/cgi-bin/plain.txt/page.sh", status: 403},
		{name: "filename from the front server", target: "/cgi-bin/page.sh/f", vars: []string{"SCRIPT_FILENAME", root + "/page.sh"},
			sname: "/cgi-bin/page.sh", pi: "/f", file: "page.sh", argv: []string{"/bin/sh"}},
		{name: "filename not executable, unmapped", target: "/x", vars: []string{"SCRIPT_FILENAME", root + "/plain.txt"}, status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			if tt.vars != nil {
				r = withVars(r, tt.vars...)
			}
			s, err := b.resolve(r)
			if tt.status != 0 {
				if backends.Status(err) != tt.status {
					t.Fatalf("err = %v (status %d), want %d; resolved %+v", err, backends.Status(err), tt.status, s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(root, tt.file)
			if s.Name != tt.sname || s.PathInfo != tt.pi || s.Filename != file {
				t.Errorf("got %q %q %q, want %q %q %q", s.Name, s.PathInfo, s.Filename, tt.sname, tt.pi, file)
			}
			var want []string
			if tt.argv != nil {
				want = append(slices.Clone(tt.argv), file)
			}
			if !slices.Equal(s.argv, want) {
				t.Errorf("argv %q, want %q", s.argv, want)
			}
			if s.cred != nil {
				t.Errorf("cred %+v without run_as", s.cred)
			}
		})
	}
}

// TestInterpreterReadable: an interpreted script the scripts' user cannot
// read is refused (403) instead of failing inside the interpreter.
func TestInterpreterReadable(t *testing.T) {
	needRoot(t)
	root := interpRoot(t)
	b, _ := newBackend(t, func(o *Options) { o.Root = root; o.Interpreters = testInterpreters })
	const owner = 1500
	if err := os.Chown(root+"/unread.sh", owner, owner); err != nil {
		t.Fatal(err)
	}
	// As root everything is readable; as another user the bits decide.
	b.access = access{uid: 0}
	if _, err := b.resolve(httptest.NewRequest("GET", "/cgi-bin/unread.sh", nil)); err != nil {
		t.Errorf("as root: %v", err)
	}
	for _, tt := range []struct {
		a      access
		mode   os.FileMode
		status int
	}{
		{access{uid: owner + 1, groups: []uint32{4242}}, 0o200, 403},
		{access{uid: owner + 1, groups: []uint32{4242}}, 0o604, 0},
		{access{uid: owner + 1, groups: []uint32{4242}}, 0o640, 403},
		{access{uid: owner + 1, groups: []uint32{4242, owner}}, 0o640, 0},
		{access{uid: owner + 1, groups: []uint32{owner}}, 0o604, 403}, // the group's bits, not the others'
		{access{uid: owner, groups: []uint32{4242}}, 0o044, 403},      // the owner's bits, not the others'
		{access{uid: owner, groups: []uint32{4242}}, 0o400, 0},
	} {
		b.access = tt.a
		if err := os.Chmod(root+"/unread.sh", tt.mode); err != nil {
			t.Fatal(err)
		}
		_, err := b.resolve(httptest.NewRequest("GET", "/cgi-bin/unread.sh", nil))
		if backends.Status(err) != tt.status && !(tt.status == 0 && err == nil) {
			t.Errorf("uid %d mode %04o: %v, want status %d", tt.a.uid, tt.mode, err, tt.status)
		}
	}
}

// TestInterpreterServe runs interpreted scripts: the interpreter gets the
// script's path as its last argument, the script its CGI variables
// (REDIRECT_STATUS for php-cgi's cgi.force_redirect included).
func TestInterpreterServe(t *testing.T) {
	checkLeaks(t)
	root := interpRoot(t)
	b, _ := newBackend(t, func(o *Options) { o.Root = root; o.Interpreters = testInterpreters })
	for target, want := range map[string]string{
		"/cgi-bin/page.sh/extra": "argv0=" + root + "/page.sh args= pi=/extra sn=/cgi-bin/page.sh sf=" + root + "/page.sh rs=200\n",
		"/cgi-bin/exec.cgi":      "argv0=" + root + "/exec.cgi args= pi= sn=/cgi-bin/exec.cgi sf=" + root + "/exec.cgi rs=200\n",
	} {
		rec := httptest.NewRecorder()
		if err := b.Serve(rec, httptest.NewRequest("GET", target, nil)); err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if rec.Code != http.StatusOK || rec.Body.String() != want {
			t.Errorf("%s: %d %q, want %q", target, rec.Code, rec.Body, want)
		}
	}
	// Single-script mode: a mapped script need not be executable.
	single, _ := newBackend(t, func(o *Options) {
		o.Root, o.Script, o.URLPrefix, o.Interpreters = "", root+"/page.sh", "/app", testInterpreters
	})
	rec := httptest.NewRecorder()
	if err := single.Serve(rec, httptest.NewRequest("GET", "/app/x", nil)); err != nil {
		t.Fatal(err)
	}
	if want := "argv0=" + root + "/page.sh args= pi=/x sn=/app"; !strings.HasPrefix(rec.Body.String(), want) {
		t.Errorf("single script: %q, want %q...", rec.Body, want)
	}
}

// TestInterpreterOptionErrors: New names the bad extension or command.
func TestInterpreterOptionErrors(t *testing.T) {
	root := interpRoot(t)
	for name, tt := range map[string]struct {
		m    map[string][]string
		want string
	}{
		"no dot":           {map[string][]string{"php": {"/bin/sh"}}, `"php": not an extension`},
		"only a dot":       {map[string][]string{".": {"/bin/sh"}}, `".": not an extension`},
		"two dots":         {map[string][]string{".tar.gz": {"/bin/sh"}}, `".tar.gz": not an extension`},
		"slash":            {map[string][]string{"./x": {"/bin/sh"}}, "not an extension"},
		"empty command":    {map[string][]string{".php": {}}, `".php": no command`},
		"relative command": {map[string][]string{".php": {"php-cgi"}}, "must be an absolute path"},
		"missing command":  {map[string][]string{".php": {"/nonexistent/php-cgi"}}, "no such file"},
		"not executable":   {map[string][]string{".php": {root + "/plain.txt"}}, "not an executable file"},
		"NUL argument":     {map[string][]string{".php": {"/bin/sh", "a\x00b"}}, "NUL"},
		"twice by case":    {map[string][]string{".sh": {"/bin/sh"}, ".SH": {"/bin/sh"}}, "given twice"},
	} {
		_, err := New(Options{Name: "x", Root: root, Interpreters: tt.m})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", name, err, tt.want)
		}
	}
	// A script with an unmapped extension must still be executable in
	// single-script mode.
	if _, err := New(Options{Name: "x", Script: root + "/plain.txt", Interpreters: testInterpreters}); err == nil {
		t.Error("single unmapped non-executable script: New succeeded")
	}
}
