package cgi

import (
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgienv"
	"github.com/junction-gw/junction/vars"
)

// script is what a request resolved to.
type script struct {
	cgienv.Script
	nph bool
	// argv is the command line when an interpreter runs the script; nil
	// runs Filename alone.
	argv []string
	// cred is who runs the script under run_as owner and user_dir; nil
	// means the backend's user (or junction's own).
	cred *syscall.Credential
}

// tree is a directory of scripts and the URL prefix mapped onto it: the
// backend's root, or a user_dir.
type tree struct {
	root   string // absolute, symlinks resolved
	prefix string // ends in "/"
	owner  int64  // user_dir: the uid scripts must belong to; -1: any
}

// inside reports whether the resolved path p is within the tree's root.
func (t *tree) inside(p string) bool {
	return p == t.root || t.root == "/" || strings.HasPrefix(p, t.root+"/")
}

// mainTree is the backend's root.
func (b *Backend) mainTree() tree { return tree{root: b.root, prefix: b.prefix, owner: -1} }

// resolve decides which file r runs, refusing anything outside the root.
func (b *Backend) resolve(r *http.Request) (script, error) {
	v := vars.FromContext(r.Context())
	if b.script != "" {
		return b.resolveSingle(r, v)
	}
	if b.userDir != "" {
		if s, ok, err := b.resolveUserDir(r, v); ok {
			return s, err
		}
	}
	if sf := v.Get("SCRIPT_FILENAME"); sf != "" {
		if s, ok, err := b.resolveFront(r, v, sf); ok {
			return s, err
		}
	}
	p, err := urlPath(r, v)
	if err != nil {
		return script{}, err
	}
	if !strings.HasPrefix(p, b.prefix) {
		return script{}, backends.Errorf(http.StatusNotFound, "cgi: %s: %q is not under %q", b.name, p, b.prefix)
	}
	return b.walk(b.mainTree(), p)
}

// urlPath returns the decoded URL path that names the script: what the
// front server said (SCRIPT_NAME+PATH_INFO, else DOCUMENT_URI, else
// REQUEST_URI decoded once), else the request's own path. A servlet
// session id path parameter is not part of the script's path (see
// stripSessionID); REQUEST_URI itself reaches the script unaltered.
func urlPath(r *http.Request, v vars.Vars) (string, error) {
	sn, hasSN := v.Lookup("SCRIPT_NAME")
	pi, hasPI := v.Lookup("PATH_INFO")
	var p string
	switch uri, hasURI := v.Lookup("REQUEST_URI"); {
	case hasSN || hasPI:
		p = sn + pi
	case v.Get("DOCUMENT_URI") != "":
		p = v.Get("DOCUMENT_URI")
	case hasURI:
		raw, _, _ := strings.Cut(uri, "?")
		var err error
		if p, err = url.PathUnescape(stripSessionID(raw)); err != nil {
			return "", backends.Errorf(http.StatusBadRequest, "cgi: bad REQUEST_URI %q: %w", uri, err)
		}
	default:
		p = r.URL.Path
		if raw := r.URL.EscapedPath(); strings.IndexByte(raw, ';') >= 0 {
			var err error
			if p, err = url.PathUnescape(stripSessionID(raw)); err != nil {
				return "", backends.Errorf(http.StatusBadRequest, "cgi: bad path %q: %w", raw, err)
			}
		}
	}
	return p, checkPath(p)
}

// stripSessionID removes ";jsessionid=..." path parameters (any case, up
// to the next "/") from the still-encoded path raw. Servlet containers keep
// the session id there when cookies are off; Apache mod_proxy_balancer and
// mod_jk route on it and forward it, so "/cgi-bin/env.sh;jsessionid=x.b"
// must still run env.sh. An encoded ";" (%3B) is part of a name and stays.
func stripSessionID(raw string) string {
	const param = ";jsessionid="
	for {
		i := indexFold(raw, param)
		if i < 0 {
			return raw
		}
		end := strings.IndexByte(raw[i+len(param):], '/')
		if end < 0 {
			raw = raw[:i]
		} else {
			raw = raw[:i] + raw[i+len(param)+end:]
		}
	}
}

// indexFold is strings.Index ignoring ASCII case; sub is lower case.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i] == ';' && strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// checkPath refuses NUL bytes and ".." segments instead of cleaning them.
func checkPath(p string) error {
	if strings.IndexByte(p, 0) >= 0 {
		return backends.Errorf(http.StatusBadRequest, "cgi: NUL in path %q", p)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == ".." {
			return backends.Errorf(http.StatusForbidden, "cgi: \"..\" in path %q", p)
		}
	}
	return nil
}

// inside reports whether the resolved path p is within the root.
func (b *Backend) inside(p string) bool {
	t := b.mainTree()
	return t.inside(p)
}

// statError maps a file-system error to the status the client sees.
func statError(err error, what string) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		return &backends.Error{Status: http.StatusNotFound, Err: err}
	}
	return backends.Errorf(http.StatusForbidden, "cgi: %s: %w", what, err)
}

var errNotDir = errors.New("not a directory") // matched via syscall.ENOTDIR below

// walk finds the first script along p under t's root: an executable
// regular file, or a readable one whose extension names an interpreter.
// The walked part becomes SCRIPT_NAME, the rest PATH_INFO.
func (b *Backend) walk(t tree, p string) (script, error) {
	rest := p[len(t.prefix):]
	cur := t.root
	var curInfo fs.FileInfo // cur's stat once the walk went below the root
	for i := 0; i <= len(rest); {
		end := strings.IndexByte(rest[i:], '/')
		if end < 0 {
			end = len(rest)
		} else {
			end += i
		}
		seg := rest[i:end]
		if seg == "" || seg == "." {
			i = end + 1
			continue
		}
		cand := cur + "/" + seg
		fi, err := os.Lstat(cand)
		if err != nil {
			return script{}, statError(notDir(err), p)
		}
		linked := fi.Mode()&fs.ModeSymlink != 0
		if linked {
			real, err := filepath.EvalSymlinks(cand)
			if err != nil {
				return script{}, statError(notDir(err), p)
			}
			if !t.inside(real) {
				return script{}, backends.Errorf(http.StatusForbidden, "cgi: %s: %q leaves the root via a symlink", b.name, p)
			}
			if fi, err = os.Stat(real); err != nil {
				return script{}, statError(notDir(err), p)
			}
			cand = real
		}
		if fi.IsDir() {
			cur, curInfo = cand, fi
			i = end + 1
			continue
		}
		// The first file ends the script part of the path, also one
		// that an interpreter runs: /x/page.php/extra has PATH_INFO
		// /extra.
		s := script{
			Script: cgienv.Script{Filename: cand, Name: t.prefix + rest[:end], PathInfo: rest[end:], DocumentRoot: t.root},
			nph:    strings.HasPrefix(seg, "nph-"),
		}
		if err := b.prepare(&s, seg, fi, scriptDir{path: cur, info: curInfo, linked: linked}, t.owner); err != nil {
			return script{}, err
		}
		return s, nil
	}
	return script{}, backends.Errorf(http.StatusNotFound, "cgi: %s: no script in %q", b.name, p)
}

// resolveFilename checks a SCRIPT_FILENAME the front server sent.
func (b *Backend) resolveFilename(r *http.Request, v vars.Vars, sf string) (script, error) {
	if strings.IndexByte(sf, 0) >= 0 {
		return script{}, backends.Errorf(http.StatusBadRequest, "cgi: NUL in SCRIPT_FILENAME")
	}
	if !filepath.IsAbs(sf) {
		return script{}, backends.Errorf(http.StatusForbidden, "cgi: %s: relative SCRIPT_FILENAME %q", b.name, sf)
	}
	real, fi, dir, ok, err := b.belowRoot(sf)
	if !ok {
		real, err = filepath.EvalSymlinks(sf)
		if err != nil {
			if !b.inside(filepath.Clean(sf)) {
				// Do not tell whether files outside the root exist.
				return script{}, backends.Errorf(http.StatusForbidden, "cgi: %s: SCRIPT_FILENAME %q outside root", b.name, sf)
			}
			return script{}, statError(notDir(err), sf)
		}
		if !b.inside(real) {
			return script{}, backends.Errorf(http.StatusForbidden, "cgi: %s: SCRIPT_FILENAME %q resolves to %q outside root", b.name, sf, real)
		}
		fi, err = os.Stat(real)
	}
	if err != nil {
		return script{}, statError(notDir(err), sf)
	}
	if !fi.Mode().IsRegular() {
		return script{}, backends.Errorf(http.StatusForbidden, "cgi: %s: %s is not an executable file", b.name, real)
	}
	sn, hasSN := v.Lookup("SCRIPT_NAME")
	pi, hasPI := v.Lookup("PATH_INFO")
	if !hasSN {
		rel, err := filepath.Rel(b.root, real)
		if err != nil {
			return script{}, backends.Errorf(http.StatusForbidden, "cgi: %s: %w", b.name, err)
		}
		sn = b.prefix + filepath.ToSlash(rel)
	}
	if !hasPI {
		if rest, ok := strings.CutPrefix(r.URL.Path, sn); ok {
			pi = rest
		}
	}
	if err := checkPath(sn + pi); err != nil {
		return script{}, err
	}
	s := script{
		Script: cgienv.Script{Filename: real, Name: sn, PathInfo: pi, DocumentRoot: b.root},
		nph:    strings.HasPrefix(filepath.Base(sf), "nph-"),
	}
	// As named: a symlink below the root is resolved by the slow path
	// (!ok), where the directory is left for prepare to stat.
	named := scriptDir{path: filepath.Dir(filepath.Clean(sf)), info: dir, linked: !ok}
	if err := b.prepare(&s, filepath.Base(sf), fi, named, -1); err != nil {
		return script{}, err
	}
	return s, nil
}

// belowRoot resolves a SCRIPT_FILENAME that names a path below the
// (already resolved) root in clean form, with one Lstat per component
// below the root where EvalSymlinks would take one per component from /.
// ok is false, and the caller resolves sf fully, when sf is not such a
// path or a component below the root is a symlink. With ok, err is the
// Lstat failure of the first missing component, and dir is the Lstat of
// the file's directory when that is below the root (nil: the root itself).
func (b *Backend) belowRoot(sf string) (real string, fi, dir fs.FileInfo, ok bool, err error) {
	base := b.root + "/"
	if b.root == "/" {
		base = "/"
	}
	if len(sf) <= len(base) || !strings.HasPrefix(sf, base) || filepath.Clean(sf) != sf {
		return "", nil, nil, false, nil
	}
	// The root's path was resolved at start; it must still name the same
	// directory (not one that a directory above it, since replaced by a
	// symlink, now leads to).
	if rfi, err := os.Lstat(b.root); err != nil || !rfi.IsDir() || !os.SameFile(rfi, b.rootInfo) {
		return "", nil, nil, false, nil
	}
	for i := len(base); ; {
		end := strings.IndexByte(sf[i:], '/')
		if end < 0 {
			end = len(sf)
		} else {
			end += i
		}
		if fi, err = os.Lstat(sf[:end]); err != nil {
			return "", nil, nil, true, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", nil, nil, false, nil
		}
		if end == len(sf) {
			return sf, fi, dir, true, nil
		}
		dir = fi
		i = end + 1
	}
}

// resolveSingle handles single-script mode: only SCRIPT_NAME and PATH_INFO
// depend on the request.
func (b *Backend) resolveSingle(r *http.Request, v vars.Vars) (script, error) {
	sn, hasSN := v.Lookup("SCRIPT_NAME")
	pi, hasPI := v.Lookup("PATH_INFO")
	if !hasSN || !hasPI {
		p, err := urlPath(r, v)
		if err != nil {
			return script{}, err
		}
		if !hasSN {
			sn = b.scriptName
		}
		if !hasPI {
			var ok bool
			if pi, ok = strings.CutPrefix(p, sn); !ok {
				pi = p
			}
		}
	}
	// Where the front server split the path is its guess at where a
	// script's name ends: nginx's fastcgi_params and Apache mod_proxy_scgi
	// send the whole path as SCRIPT_NAME, h2o sends it all as PATH_INFO.
	// Here the script is known and url_prefix is its name, so a path under
	// it is split there whatever the front server sent: the application
	// sees the same SCRIPT_NAME and PATH_INFO behind every front server.
	if b.scriptName != "" {
		if rest, ok := cutSegmentPrefix(sn+pi, b.scriptName); ok {
			sn, pi = b.scriptName, rest
		}
	}
	if err := checkPath(sn + pi); err != nil {
		return script{}, err
	}
	s := script{
		Script: cgienv.Script{Filename: b.script, Name: sn, PathInfo: pi, DocumentRoot: filepath.Dir(b.script)},
		nph:    strings.HasPrefix(filepath.Base(b.script), "nph-"),
		argv:   b.singleArgv,
	}
	if b.runAsOwner {
		if err := b.prepareSingle(&s); err != nil {
			return script{}, err
		}
	}
	return s, nil
}

// prepareSingle makes run_as owner's checks of the single script, per
// request (its owner or mode may change): an lstat of it and a stat of its
// directory, and where it is a symlink, a stat of the file it resolves to
// and of that file's directory.
func (b *Backend) prepareSingle(s *script) error {
	fi, err := os.Lstat(b.script)
	if err != nil {
		return statError(notDir(err), b.script)
	}
	dir := scriptDir{path: filepath.Dir(b.script)}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if s.Filename, err = filepath.EvalSymlinks(b.script); err == nil {
			fi, err = os.Stat(s.Filename)
		}
		if err != nil {
			return statError(notDir(err), b.script)
		}
		dir.linked = true
	}
	return b.prepare(s, filepath.Base(b.script), fi, dir, -1)
}

// cutSegmentPrefix returns p without prefix when prefix is p or a leading
// run of whole segments of p ("/app" in "/app/x", not in "/apple").
func cutSegmentPrefix(p, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(p, prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	return rest, true
}
