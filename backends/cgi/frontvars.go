package cgi

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/junction-gw/junction/vars"
)

// What the stock front servers send to name the script, for a request of
// /cgi-bin/env.sh/a%20b/c?x=1 (all send REQUEST_URI as the client wrote
// it; "docroot" is the front server's own document root):
//
//	nginx scgi_params          no SCRIPT_NAME, PATH_INFO or SCRIPT_FILENAME; DOCUMENT_URI
//	nginx fastcgi_params       SCRIPT_NAME=/cgi-bin/env.sh/a b/c, no PATH_INFO,
//	                           SCRIPT_FILENAME only when configured
//	Apache mod_proxy_scgi      SCRIPT_NAME=/cgi-bin/env.sh/a b/c, no PATH_INFO,
//	                           SCRIPT_FILENAME=proxy:scgi://HOST:PORT/cgi-bin/env.sh/a%20b/c
//	                           (the backend URL, not a file), DOCUMENT_ROOT=docroot
//	Apache mod_proxy_fcgi      SCRIPT_FILENAME=proxy:fcgi://HOST:PORT/docroot/cgi-bin/env.sh
//	                           (the FastCGI codec strips the scheme, as php-fpm does)
//	lighttpd mod_scgi and      SCRIPT_NAME=/cgi-bin/env.sh (the prefix and one more
//	mod_fastcgi, prefix        segment), PATH_INFO=/a b/c, SCRIPT_FILENAME=docroot+SCRIPT_NAME,
//	"/cgi-bin/", check-local   DOCUMENT_ROOT=docroot, PATH_TRANSLATED=docroot+PATH_INFO
//	disabled
//	HAProxy fcgi-app           SCRIPT_NAME=/cgi-bin/env.sh/a b/c, no PATH_INFO (without a
//	(no path-info)             path-info regex), SCRIPT_FILENAME=docroot+SCRIPT_NAME,
//	                           DOCUMENT_ROOT=docroot
//	Caddy transport fastcgi    SCRIPT_NAME=/cgi-bin/env.sh, PATH_INFO=/a b/c (split .sh),
//	                           SCRIPT_FILENAME=root+SCRIPT_NAME, DOCUMENT_ROOT=root,
//	                           DOCUMENT_URI=/cgi-bin/env.sh
//	h2o fastcgi.connect        SCRIPT_NAME="", PATH_INFO=/cgi-bin/env.sh/a b/c, no
//	                           SCRIPT_FILENAME; fastcgi.document_root adds DOCUMENT_ROOT and
//	                           PATH_TRANSLATED only
//
// So a SCRIPT_FILENAME is often just the front server's document root
// joined with the URL path: it names a file on the front server's host, in
// its tree, which need not be junction's root (or even exist), and it may
// carry the PATH_INFO in it (HAProxy). Such a value says nothing the URL
// does not; when it does not name a script, junction maps the URL instead.

// resolveFront resolves the SCRIPT_FILENAME sf the front server sent. ok
// is false when the URL names the script instead: sf is Apache's
// "proxy:SCHEME://..." marker (mod_proxy_scgi, and mod_proxy_fcgi through
// a balancer, send the backend URL there, not a file), or it is the front
// server's own document root joined with the URL and names no script here
// (urlInstead).
func (b *Backend) resolveFront(r *http.Request, v vars.Vars, sf string) (s script, ok bool, err error) {
	if strings.HasPrefix(sf, "proxy:") {
		return script{}, false, nil
	}
	s, err = b.resolveFilename(r, v, sf)
	if err != nil && b.urlInstead(v, sf) {
		return script{}, false, nil
	}
	return s, true, err
}

// fromDocumentRoot reports whether sf is exactly the front server's
// DOCUMENT_ROOT joined with its SCRIPT_NAME (or, for a SCRIPT_NAME the
// front server split off, SCRIPT_NAME+PATH_INFO): a name the front server
// derived from the URL, not one configured to point at a script.
func fromDocumentRoot(v vars.Vars, sf string) bool {
	root, ok := v.Lookup("DOCUMENT_ROOT")
	sn, hasSN := v.Lookup("SCRIPT_NAME")
	if !ok || root == "" || !hasSN || !strings.HasPrefix(sn, "/") {
		return false
	}
	root = strings.TrimRight(root, "/")
	return sf == root+sn || sf == root+sn+v.Get("PATH_INFO")
}

// urlInstead reports whether a SCRIPT_FILENAME that did not resolve should
// give way to the URL: it was derived from the URL (fromDocumentRoot), and
// it names nothing, something outside the root, or a directory (lighttpd
// names the first segment after its prefix, which may be a directory of
// scripts). A regular file inside the root that is not executable stays
// refused. Only called once resolveFilename failed, so the common case
// pays nothing.
func (b *Backend) urlInstead(v vars.Vars, sf string) bool {
	if !fromDocumentRoot(v, sf) {
		return false
	}
	real, err := filepath.EvalSymlinks(sf)
	if err != nil || !b.inside(real) {
		return true
	}
	fi, err := os.Stat(real)
	return err != nil || fi.IsDir()
}
