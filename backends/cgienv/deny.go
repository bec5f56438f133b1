package cgienv

import "strings"

// deniedNames are never taken from the front server (compared upper-cased,
// so "http_proxy" is caught too). They steer the dynamic loader, libc,
// shells and interpreters: a front-server parameter must not be able to make
// a script load a library, run code at start-up or trust another CA.
var deniedNames = map[string]bool{
	// Shells.
	"PATH": true, "IFS": true, "SHELL": true, "SHELLOPTS": true, "BASHOPTS": true,
	"ENV": true, "BASH_ENV": true, "CDPATH": true, "GLOBIGNORE": true,
	"PROMPT_COMMAND": true, "PS1": true, "PS2": true, "PS3": true, "PS4": true,
	"HOME": true, "TMPDIR": true, "TMP": true, "TEMP": true, "EDITOR": true, "VISUAL": true,
	// glibc (the names it drops for set-uid programs).
	"GCONV_PATH": true, "GETCONF_DIR": true, "HOSTALIASES": true, "LOCALDOMAIN": true,
	"LOCPATH": true, "NIS_PATH": true, "NLSPATH": true, "RESOLV_HOST_CONF": true,
	"RES_OPTIONS": true, "TZDIR": true, "TZ": true,
	// Interpreters and runtimes.
	"PERLLIB": true, "NODE_OPTIONS": true, "NODE_PATH": true, "PHPRC": true,
	"PHP_INI_SCAN_DIR": true, "JAVA_TOOL_OPTIONS": true, "_JAVA_OPTIONS": true,
	"JDK_JAVA_OPTIONS": true, "CLASSPATH": true, "TCLLIBPATH": true,
	// TLS trust.
	"OPENSSL_CONF": true, "OPENSSL_ENGINES": true, "SSL_CERT_FILE": true, "SSL_CERT_DIR": true,
	"CURL_CA_BUNDLE": true, "REQUESTS_CA_BUNDLE": true,
	// Proxies (the httpoxy family in its other spellings).
	"NO_PROXY": true,
}

// deniedPrefixes deny whole families.
var deniedPrefixes = []string{
	"LD_",        // dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT
	"DYLD_",      // the macOS loader
	"BASH_FUNC_", // exported bash functions (Shellshock)
	"MALLOC_",    // glibc malloc tuning and tracing
	"GLIBC_",     // GLIBC_TUNABLES (CVE-2023-4911)
	"PYTHON",     // PYTHONPATH, PYTHONSTARTUP, PYTHONHOME
	"PERL",       // PERL5LIB, PERL5OPT, PERLIO, PERLDB_OPTS
	"RUBY",       // RUBYLIB, RUBYOPT
	"GEM_",       // GEM_PATH, GEM_HOME
	"BUNDLE_",    // Bundler
	"LUA_",       // LUA_INIT runs code
	"NODE_",      // the rest of Node.js
	"NPM_CONFIG_",
	"GIT_", // GIT_EXEC_PATH, GIT_SSH_COMMAND
	"GCONV_",
	"LC_", // with LOCPATH gone these are harmless, but locale files are parsed by libc
	"KRB5",
	"GNUTLS_",
}

// Denied reports whether the front server may never set name.
func Denied(name string) bool {
	u := strings.ToUpper(name)
	if deniedNames[u] || strings.HasSuffix(u, "_PROXY") {
		return true
	}
	for _, p := range deniedPrefixes {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}
