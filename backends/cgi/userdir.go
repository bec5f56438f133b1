package cgi

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/vars"
)

// resolveUserDir resolves a request for prefix+"~user/REST" (Apache's
// UserDir): REST is walked under HOME/user_dir of user, with user's passwd
// entry giving HOME, and the script must belong to user, who runs it. A
// SCRIPT_FILENAME from the front server is not consulted: it names the
// front server's idea of the file, and ~ paths are junction's to map. ok
// is false when the path is not a ~ path and the backend has a root to
// serve it from.
func (b *Backend) resolveUserDir(r *http.Request, v vars.Vars) (s script, ok bool, err error) {
	p, err := urlPath(r, v)
	if err != nil {
		return script{}, true, err
	}
	rest, isUser := strings.CutPrefix(p, b.prefix+"~")
	if !isUser {
		if b.root != "" {
			return script{}, false, nil
		}
		return script{}, true, backends.Errorf(http.StatusNotFound, "cgi: %s: %q is not under %q", b.name, p, b.prefix+"~")
	}
	name, _, _ := strings.Cut(rest, "/")
	t, err := b.userTree(name)
	if err != nil {
		return script{}, true, err
	}
	if !strings.HasPrefix(p, t.prefix) {
		return script{}, true, backends.Errorf(http.StatusNotFound, "cgi: %s: no script in %q", b.name, p)
	}
	s, err = b.walk(t, p)
	return s, true, err
}

// userTree returns the script tree of the user name: HOME/user_dir,
// symlinks resolved, under prefix+"~name/", whose scripts must belong to
// that user.
func (b *Backend) userTree(name string) (tree, error) {
	if name == "" {
		return tree{}, backends.Errorf(http.StatusNotFound, "cgi: %s: no user name after ~", b.name)
	}
	u, err := b.lookupUser(name)
	if err != nil {
		return tree{}, backends.Errorf(http.StatusNotFound, "cgi: %s: ~%s: %w", b.name, name, err)
	}
	uid := parseID(u.Uid)
	if uid == 0 || uid < b.minUID {
		return tree{}, backends.Errorf(http.StatusForbidden, "cgi: %s: user_dir: ~%s: uid %d is below min_uid %d", b.name, name, uid, b.minUID)
	}
	if !filepath.IsAbs(u.HomeDir) {
		return tree{}, backends.Errorf(http.StatusNotFound, "cgi: %s: ~%s: home directory %q is not an absolute path", b.name, name, u.HomeDir)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(u.HomeDir, b.userDir))
	if err != nil {
		return tree{}, statError(notDir(err), "~"+name)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return tree{}, statError(notDir(err), "~"+name)
	}
	if !fi.IsDir() {
		return tree{}, backends.Errorf(http.StatusNotFound, "cgi: %s: ~%s: %s is not a directory", b.name, name, real)
	}
	return tree{root: real, prefix: b.prefix + "~" + name + "/", owner: int64(uid)}, nil
}
