package cgi

import (
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgienv"
	"github.com/junction-gw/junction/vars"
)

// script is what a request resolved to.
type script struct {
	cgienv.Script
	nph bool
}

// resolve decides which file r runs, refusing anything outside the root.
func (b *Backend) resolve(r *http.Request) (script, error) {
	v := vars.FromContext(r.Context())
	if b.script != "" {
		return b.resolveSingle(r, v)
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
	return b.walk(p)
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
	return p == b.root || b.root == "/" || strings.HasPrefix(p, b.root+"/")
}

// statError maps a file-system error to the status the client sees.
func statError(err error, what string) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		return &backends.Error{Status: http.StatusNotFound, Err: err}
	}
	return backends.Errorf(http.StatusForbidden, "cgi: %s: %w", what, err)
}

var errNotDir = errors.New("not a directory") // matched via syscall.ENOTDIR below

// walk finds the first executable regular file along p under the root.
// The walked part becomes SCRIPT_NAME, the rest PATH_INFO.
func (b *Backend) walk(p string) (script, error) {
	rest := p[len(b.prefix):]
	cur := b.root
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
		if fi.Mode()&fs.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(cand)
			if err != nil {
				return script{}, statError(notDir(err), p)
			}
			if !b.inside(real) {
				return script{}, backends.Errorf(http.StatusForbidden, "cgi: %s: %q leaves the root via a symlink", b.name, p)
			}
			if fi, err = os.Stat(real); err != nil {
				return script{}, statError(notDir(err), p)
			}
			cand = real
		}
		switch {
		case fi.IsDir():
			cur = cand
			i = end + 1
			continue
		case fi.Mode().IsRegular() && fi.Mode()&0o111 != 0:
			return script{
				Script: cgienv.Script{Filename: cand, Name: b.prefix + rest[:end], PathInfo: rest[end:], DocumentRoot: b.root},
				nph:    strings.HasPrefix(seg, "nph-"),
			}, nil
		default:
			return script{}, backends.Errorf(http.StatusForbidden, "cgi: %s: %s is not an executable file", b.name, cand)
		}
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
	real, fi, ok, err := b.belowRoot(sf)
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
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
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
	return script{
		Script: cgienv.Script{Filename: real, Name: sn, PathInfo: pi, DocumentRoot: b.root},
		nph:    strings.HasPrefix(filepath.Base(sf), "nph-"),
	}, nil
}

// belowRoot resolves a SCRIPT_FILENAME that names a path below the
// (already resolved) root in clean form, with one Lstat per component
// below the root where EvalSymlinks would take one per component from /.
// ok is false, and the caller resolves sf fully, when sf is not such a
// path or a component below the root is a symlink. With ok, err is the
// Lstat failure of the first missing component.
func (b *Backend) belowRoot(sf string) (real string, fi fs.FileInfo, ok bool, err error) {
	base := b.root + "/"
	if b.root == "/" {
		base = "/"
	}
	if len(sf) <= len(base) || !strings.HasPrefix(sf, base) || filepath.Clean(sf) != sf {
		return "", nil, false, nil
	}
	// The root's path was resolved at start; it must still name the same
	// directory (not one that a directory above it, since replaced by a
	// symlink, now leads to).
	if rfi, err := os.Lstat(b.root); err != nil || !rfi.IsDir() || !os.SameFile(rfi, b.rootInfo) {
		return "", nil, false, nil
	}
	for i := len(base); ; {
		end := strings.IndexByte(sf[i:], '/')
		if end < 0 {
			end = len(sf)
		} else {
			end += i
		}
		if fi, err = os.Lstat(sf[:end]); err != nil {
			return "", nil, true, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", nil, false, nil
		}
		if end == len(sf) {
			return sf, fi, true, nil
		}
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
	if err := checkPath(sn + pi); err != nil {
		return script{}, err
	}
	return script{
		Script: cgienv.Script{Filename: b.script, Name: sn, PathInfo: pi, DocumentRoot: filepath.Dir(b.script)},
		nph:    strings.HasPrefix(filepath.Base(b.script), "nph-"),
	}, nil
}
