package cgi

import (
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/junction-gw/junction/backends"
)

// userDirEntries: homes of alice (1500) and bob (1600) with public_html,
// and a home without one.
var userDirEntries = []ownedEntry{
	{path: "alice", mode: os.ModeDir | 0o755, uid: 1500, gid: 1500},
	{path: "alice/public_html", mode: os.ModeDir | 0o755, uid: 1500, gid: 1500},
	{path: "alice/public_html/id.cgi", mode: 0o755, uid: 1500, gid: 1500},
	{path: "alice/public_html/id.sh", mode: 0o644, uid: 1500, gid: 1500},
	{path: "alice/public_html/sub", mode: os.ModeDir | 0o755, uid: 1500, gid: 1500},
	{path: "alice/public_html/sub/deep.cgi", mode: 0o755, uid: 1500, gid: 1500},
	{path: "alice/public_html/bobs.cgi", mode: 0o755, uid: 1600, gid: 1600},
	{path: "alice/public_html/link-bob.cgi", link: "../../bob/public_html/id.cgi", uid: 1500, gid: 1500},
	{path: "alice/public_html/world.cgi", mode: 0o777, uid: 1500, gid: 1500},
	{path: "bob", mode: os.ModeDir | 0o755, uid: 1600, gid: 1600},
	{path: "bob/www", mode: os.ModeDir | 0o755, uid: 1600, gid: 1600},
	{path: "bob/www/id.cgi", mode: 0o755, uid: 1600, gid: 1600},
	{path: "bob/public_html", link: "www", uid: 1600, gid: 1600},
	{path: "carol", mode: os.ModeDir | 0o755, uid: 1700, gid: 1700},
	{path: "daemon", mode: os.ModeDir | 0o755, uid: 1, gid: 1},
	{path: "daemon/public_html", mode: os.ModeDir | 0o755, uid: 1, gid: 1},
	{path: "daemon/public_html/id.cgi", mode: 0o755, uid: 1, gid: 1},
}

// fakeUsers is a passwd for homes under dir.
func fakeUsers(dir string) func(string) (*user.User, error) {
	users := map[string]*user.User{
		"alice":  {Username: "alice", Uid: "1500", Gid: "1500", HomeDir: dir + "/alice"},
		"bob":    {Username: "bob", Uid: "1600", Gid: "1600", HomeDir: dir + "/bob"},
		"carol":  {Username: "carol", Uid: "1700", Gid: "1700", HomeDir: dir + "/carol"},
		"daemon": {Username: "daemon", Uid: "1", Gid: "1", HomeDir: dir + "/daemon"},
		"rel":    {Username: "rel", Uid: "1800", Gid: "1800", HomeDir: "home/rel"},
	}
	return func(name string) (*user.User, error) {
		if u, ok := users[name]; ok {
			return u, nil
		}
		return nil, user.UnknownUserError(name)
	}
}

func userDirBackend(t testing.TB, mod func(*Options)) (*Backend, string) {
	t.Helper()
	homes := ownedTree(t, userDirEntries)
	b, _ := newBackend(t, func(o *Options) {
		o.Root, o.URLPrefix, o.UserDir = "", "/", "public_html"
		if mod != nil {
			mod(o)
		}
	})
	b.lookupUser = fakeUsers(homes)
	return b, homes
}

// TestUserDirResolve: /~user/REST runs HOME/public_html/REST as user, with
// run_as owner's checks and the user's uid required of the file.
func TestUserDirResolve(t *testing.T) {
	needRoot(t)
	b, homes := userDirBackend(t, func(o *Options) { o.Interpreters = map[string][]string{".sh": {"/bin/sh"}} })
	tests := []struct {
		target    string
		uid       uint32
		sname, pi string
		file      string
		droot     string
		status    int
		reason    string
	}{
		{target: "/~alice/id.cgi/p", uid: 1500, sname: "/~alice/id.cgi", pi: "/p", file: "alice/public_html/id.cgi", droot: "alice/public_html"},
		{target: "/~alice/sub/deep.cgi", uid: 1500, sname: "/~alice/sub/deep.cgi", file: "alice/public_html/sub/deep.cgi", droot: "alice/public_html"},
		{target: "/~alice/id.sh", uid: 1500, sname: "/~alice/id.sh", file: "alice/public_html/id.sh", droot: "alice/public_html"},
		{target: "/~bob/id.cgi", uid: 1600, sname: "/~bob/id.cgi", file: "bob/www/id.cgi", droot: "bob/www"},
		{target: "/~alice/bobs.cgi", status: 403, reason: "owned by uid 1600, not by the user whose directory it is (uid 1500)"},
		{target: "/~alice/link-bob.cgi", status: 403, reason: "leaves the root via a symlink"},
		{target: "/~alice/world.cgi", status: 403, reason: "writable by group or others"},
		{target: "/~daemon/id.cgi", status: 403, reason: "uid 1 is below min_uid 1000"},
		{target: "/~carol/x.cgi", status: 404},
		{target: "/~nobody-such/x.cgi", status: 404},
		{target: "/~rel/x.cgi", status: 404},
		{target: "/~/x.cgi", status: 404},
		{target: "/~alice", status: 404},
		{target: "/~alice/", status: 404},
		{target: "/~alice/missing.cgi", status: 404},
		{target: "/~alice/../bob/public_html/id.cgi", status: 403},
		{target: "/elsewhere/x.cgi", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			s, err := b.resolve(httptest.NewRequest("GET", tt.target, nil))
			if tt.status != 0 {
				if backends.Status(err) != tt.status || !strings.Contains(errString(err), tt.reason) {
					t.Fatalf("err = %v (status %d), want %d with %q", err, backends.Status(err), tt.status, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != tt.sname || s.PathInfo != tt.pi || s.Filename != filepath.Join(homes, tt.file) || s.DocumentRoot != filepath.Join(homes, tt.droot) {
				t.Errorf("got %q %q %q %q", s.Name, s.PathInfo, s.Filename, s.DocumentRoot)
			}
			if s.cred == nil || s.cred.Uid != tt.uid {
				t.Errorf("cred %+v, want uid %d", s.cred, tt.uid)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestUserDirBesideRoot: with a root too, the root serves what is not
// under ~, as the backend's user (here junction's own), and a front
// server's SCRIPT_FILENAME does not steer a ~ path.
func TestUserDirBesideRoot(t *testing.T) {
	needRoot(t)
	b, homes := userDirBackend(t, func(o *Options) { o.Root, o.URLPrefix = testRoot, "/cgi-bin/" })
	s, err := b.resolve(httptest.NewRequest("GET", "/cgi-bin/env.cgi", nil))
	if err != nil || s.Filename != testRoot+"/env.cgi" || s.cred != nil {
		t.Errorf("root script: %+v %v", s, err)
	}
	r := withVars(httptest.NewRequest("GET", "/cgi-bin/~alice/id.cgi", nil), "SCRIPT_FILENAME", testRoot+"/env.cgi")
	s, err = b.resolve(r)
	if err != nil || s.Filename != homes+"/alice/public_html/id.cgi" || s.Name != "/cgi-bin/~alice/id.cgi" || s.cred == nil || s.cred.Uid != 1500 {
		t.Errorf("user script: %+v %v", s, err)
	}
	if _, err := b.resolve(httptest.NewRequest("GET", "/~alice/id.cgi", nil)); backends.Status(err) != 404 {
		t.Errorf("~ outside the prefix: %v", err)
	}
}

// TestUserDirServe runs alice's and bob's scripts, each as its user.
func TestUserDirServe(t *testing.T) {
	needRoot(t)
	checkLeaks(t)
	b, _ := userDirBackend(t, nil)
	for target, want := range map[string]string{"/~alice/id.cgi": "1500:1500", "/~bob/id.cgi": "1600:1600"} {
		rec := httptest.NewRecorder()
		if err := b.Serve(rec, httptest.NewRequest("GET", target, nil)); err != nil || rec.Body.String() != want {
			t.Errorf("%s: %v %q, want %q", target, err, rec.Body, want)
		}
	}
}

// TestUserDirOptionErrors: user_dir must be a clean relative path and
// does not go with script.
func TestUserDirOptionErrors(t *testing.T) {
	for _, dir := range []string{"/abs", "../up", "..", ".", "a/../b", "a//b"} {
		if _, err := New(Options{Name: "x", UserDir: dir}); err == nil || !strings.Contains(err.Error(), "user_dir") {
			t.Errorf("user_dir %q: %v", dir, err)
		}
	}
	_, err := New(Options{Name: "x", Script: testRoot + "/env.cgi", UserDir: "public_html"})
	if err == nil || !strings.Contains(err.Error(), "user_dir does not go with script") {
		t.Errorf("user_dir with script: %v", err)
	}
	_, err = New(Options{Name: "x", UserDir: "public_html"})
	if root := os.Geteuid() == 0; root && err != nil || !root && err == nil {
		t.Errorf("user_dir alone (euid %d): %v", os.Geteuid(), err)
	}
}
