package cgi

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/junction-gw/junction/backends"
)

// needRoot skips tests that give files to other users: only root can.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("run_as owner needs root (chown, setuid); run the tests as root")
	}
}

// ownedEntry is one file or directory of an owner test tree.
type ownedEntry struct {
	path     string
	mode     os.FileMode // with os.ModeDir for a directory
	uid, gid int
	link     string // a symlink to this target instead
}

// idScript prints the ids it runs with.
const idScript = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s:%s' \"$(id -u)\" \"$(id -g)\"\n"

// ownedTree builds entries under a fresh directory every user can reach
// and returns it, symlinks resolved.
func ownedTree(t testing.TB, entries []ownedEntry) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's directories are 0700; the users scripts run as must
	// get through them.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.path)
		switch {
		case e.link != "":
			err = os.Symlink(e.link, p)
		case e.mode.IsDir():
			err = os.Mkdir(p, 0o700)
		default:
			err = os.WriteFile(p, []byte(idScript), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.link != "" {
			if err := os.Lchown(p, e.uid, e.gid); err != nil {
				t.Fatal(err)
			}
			continue
		}
		// chown clears setuid bits: the mode goes last.
		if err := os.Chown(p, e.uid, e.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, e.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ownerEntries is the tree of the run_as tests: users 1500 (a/) and 1600
// (b/) under a root-owned root.
var ownerEntries = []ownedEntry{
	{path: "a", mode: os.ModeDir | 0o755, uid: 1500, gid: 1500},
	{path: "a/ok.cgi", mode: 0o755, uid: 1500, gid: 1500},
	{path: "a/owner-only.cgi", mode: 0o700, uid: 1500, gid: 1500},
	{path: "a/ok.sh", mode: 0o644, uid: 1500, gid: 1500},
	{path: "a/unread.sh", mode: 0o244, uid: 1500, gid: 1500},
	{path: "a/world-writable.cgi", mode: 0o757, uid: 1500, gid: 1500},
	{path: "a/group-writable.cgi", mode: 0o775, uid: 1500, gid: 1500},
	{path: "a/noexec.cgi", mode: 0o644, uid: 1500, gid: 1500},
	{path: "a/others-exec.cgi", mode: 0o655, uid: 1500, gid: 1500},
	{path: "a/low-uid.cgi", mode: 0o755, uid: 500, gid: 1500},
	{path: "a/low-gid.cgi", mode: 0o755, uid: 1500, gid: 500},
	{path: "a/root-group.cgi", mode: 0o755, uid: 1500, gid: 0},
	{path: "a/root.cgi", mode: 0o755, uid: 0, gid: 0},
	{path: "a/setuid.cgi", mode: os.ModeSetuid | 0o755, uid: 1500, gid: 1500},
	{path: "a/link-own.cgi", link: "ok.cgi", uid: 1500, gid: 1500},
	{path: "a/link-bob.cgi", link: "../b/ok.cgi", uid: 1500, gid: 1500},
	{path: "a/link-shared.cgi", link: "../shared/alices.cgi", uid: 1500, gid: 1500},
	{path: "a/link-in-bobs.cgi", link: "../b/alices.cgi", uid: 1500, gid: 1500},
	{path: "b", mode: os.ModeDir | 0o755, uid: 1600, gid: 1600},
	{path: "b/ok.cgi", mode: 0o755, uid: 1600, gid: 1600},
	{path: "b/alices.cgi", mode: 0o755, uid: 1500, gid: 1500},
	{path: "shared", mode: os.ModeDir | 0o777, uid: 0, gid: 0},
	{path: "shared/alices.cgi", mode: 0o755, uid: 1500, gid: 1500},
	{path: "open", mode: os.ModeDir | 0o775, uid: 1500, gid: 1500},
	{path: "open/x.cgi", mode: 0o755, uid: 1500, gid: 1500},
	{path: "low", mode: os.ModeDir | 0o755, uid: 500, gid: 500},
	{path: "low/x.cgi", mode: 0o755, uid: 500, gid: 500},
	{path: "top.cgi", mode: 0o755, uid: 1500, gid: 1500},
	{path: "alink", link: "a", uid: 0, gid: 0},
}

// TestRunAsOwnerChecks: each of suEXEC's checks refuses with 403 and
// says why; a script that passes runs as its file's owner and group.
func TestRunAsOwnerChecks(t *testing.T) {
	needRoot(t)
	root := ownedTree(t, ownerEntries)
	b, _ := newBackend(t, func(o *Options) {
		o.Root, o.RunAsOwner, o.Interpreters = root, true, map[string][]string{".sh": {"/bin/sh"}}
	})
	tests := []struct {
		target   string
		vars     []string
		uid, gid uint32 // 0: refused, with reason
		reason   string
		file     string
	}{
		{target: "/cgi-bin/a/ok.cgi/pi", uid: 1500, gid: 1500},
		{target: "/cgi-bin/a/owner-only.cgi", uid: 1500, gid: 1500},
		{target: "/cgi-bin/a/ok.sh", uid: 1500, gid: 1500},
		{target: "/cgi-bin/b/ok.cgi", uid: 1600, gid: 1600},
		{target: "/cgi-bin/a/link-own.cgi", uid: 1500, gid: 1500, file: "a/ok.cgi"},
		{target: "/cgi-bin/alink/ok.cgi", uid: 1500, gid: 1500, file: "a/ok.cgi"},
		{target: "/cgi-bin/a/world-writable.cgi", reason: "writable by group or others (mode 0757)"},
		{target: "/cgi-bin/a/group-writable.cgi", reason: "writable by group or others (mode 0775)"},
		{target: "/cgi-bin/a/noexec.cgi", reason: "not executable by its owner"},
		{target: "/cgi-bin/a/others-exec.cgi", reason: "not executable by its owner"},
		{target: "/cgi-bin/a/unread.sh", reason: "not readable by its owner"},
		{target: "/cgi-bin/a/low-uid.cgi", reason: "owner uid 500 is below min_uid 1000"},
		{target: "/cgi-bin/a/low-gid.cgi", reason: "group gid 500 is below min_gid 1000"},
		{target: "/cgi-bin/a/root-group.cgi", reason: "its group is root"},
		{target: "/cgi-bin/a/root.cgi", reason: "owned by root"},
		{target: "/cgi-bin/a/setuid.cgi", reason: "setuid or setgid"},
		{target: "/cgi-bin/a/link-bob.cgi", reason: "/a is owned by uid 1500, the script by uid 1600"},
		{target: "/cgi-bin/b/alices.cgi", reason: "/b is owned by uid 1600, the script by uid 1500"},
		{target: "/cgi-bin/a/link-shared.cgi", reason: "/shared is writable by group or others (mode 0777)"},
		// Alice's file, but in bob's directory: bob could replace it
		// before it is executed, as alice. Refused when asked for
		// directly, so also through alice's link.
		{target: "/cgi-bin/a/link-in-bobs.cgi", reason: "/b is owned by uid 1600, the script by uid 1500"},
		{target: "/cgi-bin/open/x.cgi", reason: "/open is writable by group or others (mode 0775)"},
		{target: "/cgi-bin/top.cgi", reason: "is owned by uid 0, the script by uid 1500"},
		// The same checks for a SCRIPT_FILENAME from the front server.
		{target: "/x", vars: []string{"SCRIPT_FILENAME", root + "/a/ok.cgi"}, uid: 1500, gid: 1500},
		{target: "/x", vars: []string{"SCRIPT_FILENAME", root + "/a/link-own.cgi"}, uid: 1500, gid: 1500, file: "a/ok.cgi"},
		{target: "/x", vars: []string{"SCRIPT_FILENAME", root + "/a/link-bob.cgi"}, reason: "owned by uid 1500, the script by uid 1600"},
		{target: "/x", vars: []string{"SCRIPT_FILENAME", root + "/b/alices.cgi"}, reason: "owned by uid 1600, the script by uid 1500"},
		{target: "/x", vars: []string{"SCRIPT_FILENAME", root + "/a/link-in-bobs.cgi"}, reason: "/b is owned by uid 1600, the script by uid 1500"},
		{target: "/x", vars: []string{"SCRIPT_FILENAME", root + "/a/world-writable.cgi"}, reason: "writable by group or others"},
		{target: "/x", vars: []string{"SCRIPT_FILENAME", root + "/top.cgi"}, reason: "is owned by uid 0, the script by uid 1500"},
	}
	for _, tt := range tests {
		t.Run(tt.target+strings.Join(tt.vars, "="), func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			if tt.vars != nil {
				r = withVars(r, tt.vars...)
			}
			s, err := b.resolve(r)
			if tt.reason != "" {
				if backends.Status(err) != 403 || !strings.Contains(err.Error(), tt.reason) {
					t.Fatalf("err = %v (status %d), want 403 with %q", err, backends.Status(err), tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.cred == nil || s.cred.Uid != tt.uid || s.cred.Gid != tt.gid || len(s.cred.Groups) != 0 {
				t.Errorf("cred %+v, want %d:%d, no supplementary groups", s.cred, tt.uid, tt.gid)
			}
			if tt.file != "" && s.Filename != filepath.Join(root, tt.file) {
				t.Errorf("file %s, want %s", s.Filename, tt.file)
			}
		})
	}
}

// TestRunAsOwnerMinIDs: min_uid and min_gid move the bounds.
func TestRunAsOwnerMinIDs(t *testing.T) {
	needRoot(t)
	root := ownedTree(t, ownerEntries)
	for _, tt := range []struct {
		minUID, minGID uint32
		target, reason string
	}{
		{0, 0, "/cgi-bin/low/x.cgi", "owner uid 500 is below min_uid 1000"},
		{400, 0, "/cgi-bin/low/x.cgi", "group gid 500 is below min_gid 1000"},
		{400, 400, "/cgi-bin/low/x.cgi", ""},
		{400, 400, "/cgi-bin/a/low-gid.cgi", ""},
		{1550, 0, "/cgi-bin/a/ok.cgi", "owner uid 1500 is below min_uid 1550"},
		{0, 1550, "/cgi-bin/b/ok.cgi", ""},
		{0, 1550, "/cgi-bin/a/ok.cgi", "group gid 1500 is below min_gid 1550"},
	} {
		b, _ := newBackend(t, func(o *Options) { o.Root, o.RunAsOwner, o.MinUID, o.MinGID = root, true, tt.minUID, tt.minGID })
		_, err := b.resolve(httptest.NewRequest("GET", tt.target, nil))
		if tt.reason == "" && err != nil || tt.reason != "" && (err == nil || !strings.Contains(err.Error(), tt.reason)) {
			t.Errorf("min %d/%d %s: %v, want %q", tt.minUID, tt.minGID, tt.target, err, tt.reason)
		}
	}
}

// TestRunAsOwnerServe runs each user's script as that user, also in
// single-script mode.
func TestRunAsOwnerServe(t *testing.T) {
	needRoot(t)
	checkLeaks(t)
	root := ownedTree(t, ownerEntries)
	b, logs := newBackend(t, func(o *Options) { o.Root, o.RunAsOwner = root, true })
	for target, want := range map[string]string{
		"/cgi-bin/a/ok.cgi":       "1500:1500",
		"/cgi-bin/b/ok.cgi":       "1600:1600",
		"/cgi-bin/a/link-own.cgi": "1500:1500",
	} {
		rec := httptest.NewRecorder()
		if err := b.Serve(rec, httptest.NewRequest("GET", target, nil)); err != nil || rec.Body.String() != want {
			t.Errorf("%s: %v %q, want %q\n%s", target, err, rec.Body, want, logs)
		}
	}
	single, _ := newBackend(t, func(o *Options) { o.Root, o.Script, o.RunAsOwner = "", root+"/b/ok.cgi", true })
	rec := httptest.NewRecorder()
	if err := single.Serve(rec, httptest.NewRequest("GET", "/", nil)); err != nil || rec.Body.String() != "1600:1600" {
		t.Errorf("single script: %v %q", err, rec.Body)
	}
	single, _ = newBackend(t, func(o *Options) { o.Root, o.Script, o.RunAsOwner = "", root+"/a/link-bob.cgi", true })
	if err := single.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)); backends.Status(err) != 403 {
		t.Errorf("single script linked to another user's: %v, want 403", err)
	}
}

// TestRunAsOwnerOptionErrors: run_as owner excludes user and group.
func TestRunAsOwnerOptionErrors(t *testing.T) {
	_, err := New(Options{Name: "x", Root: testRoot, RunAsOwner: true, User: "nobody"})
	if err == nil || !strings.Contains(err.Error(), "run_as owner excludes user and group") {
		t.Errorf("run_as with user: %v", err)
	}
	if os.Geteuid() != 0 {
		_, err := New(Options{Name: "x", Root: testRoot, RunAsOwner: true})
		if err == nil || !strings.Contains(err.Error(), "needs junction to run as root") {
			t.Errorf("run_as not as root: %v", err)
		}
	}
}
