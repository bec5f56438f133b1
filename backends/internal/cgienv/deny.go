package cgienv

import "strings"

// deniedNames are never taken from the front server (compared upper-cased,
// so "http_proxy" is caught too). They steer the dynamic loader, libc,
// shells, interpreters and runtimes: a front-server parameter must not be
// able to make a script load a library or plug-in, run code at start-up,
// trust another CA, write its TLS secrets to a file or weaken its runtime's
// safety switches. PHP_VALUE and PHP_ADMIN_VALUE stay allowed: they are
// how front servers configure php-fpm over FastCGI, by design.
var deniedNames = map[string]bool{
	// Shells: search paths, start-up files, traced commands.
	"PATH": true, "IFS": true, "SHELL": true, "SHELLOPTS": true, "BASHOPTS": true,
	"ENV": true, "CDPATH": true, "GLOBIGNORE": true, "FPATH": true, "ZDOTDIR": true,
	"PROMPT_COMMAND": true, "PS1": true, "PS2": true, "PS3": true, "PS4": true,
	"HOME": true, "TMPDIR": true, "TMP": true, "TEMP": true,
	// Programs a script may start on its own.
	"EDITOR": true, "VISUAL": true, "PAGER": true, "LESSOPEN": true, "LESSCLOSE": true,
	"WGETRC": true, "TERMINFO": true, "TERMINFO_DIRS": true, "TERMCAP": true,
	// glibc (the names it drops for set-uid programs).
	"GCONV_PATH": true, "GETCONF_DIR": true, "HOSTALIASES": true, "LOCALDOMAIN": true,
	"LOCPATH": true, "NIS_PATH": true, "NLSPATH": true, "RES_OPTIONS": true,
	"TZDIR": true, "TZ": true,
	// Interpreters and runtimes.
	"PHPRC": true, "PHP_INI_SCAN_DIR": true, "CLASSPATH": true,
	"TCLLIBPATH": true, "TCL_LIBRARY": true, "TK_LIBRARY": true,
	"MYSQL_HOME":        true, // my.cnf can name a client plug-in directory
	"SASL_PATH":         true, // Cyrus SASL loads plug-ins from it
	"GIO_EXTRA_MODULES": true, "GI_TYPELIB_PATH": true, "GTK_PATH": true,
	"GTK_MODULES": true, "QT_PLUGIN_PATH": true,
	// The Go runtime: GODEBUG turns security fixes back off, the others
	// change memory limits, crash output and coverage files.
	"GODEBUG": true, "GOGC": true, "GOMEMLIMIT": true, "GOMAXPROCS": true,
	"GOTRACEBACK": true, "GORACE": true, "GOCOVERDIR": true, "GOFIPS140": true,
	// TLS trust and secrets (OPENSSL_* below).
	"SSL_CERT_FILE": true, "SSL_CERT_DIR": true, "SSLKEYLOGFILE": true,
	"REQUESTS_CA_BUNDLE": true,
	// Proxies (the httpoxy family in its other spellings).
	"NO_PROXY": true,
}

// deniedPrefixes deny whole families.
var deniedPrefixes = []string{
	"LD_",     // dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT
	"DYLD_",   // the macOS loader
	"BASH_",   // BASH_FUNC_* (Shellshock), BASH_ENV, BASH_LOADABLES_PATH, BASH_XTRACEFD
	"MALLOC_", // glibc malloc tuning and tracing
	"GLIBC_",  // GLIBC_TUNABLES (CVE-2023-4911)
	"RESOLV_", // the resolver's host.conf overrides
	"GCONV_",  // iconv modules
	"LC_",     // with LOCPATH gone these are harmless, but locale files are parsed by libc
	"PYTHON",  // PYTHONPATH, PYTHONSTARTUP, PYTHONHOME
	"PERL",    // PERL5LIB, PERL5OPT, PERLIO, PERLDB_OPTS, PERLLIB
	"RUBY",    // RUBYLIB, RUBYOPT
	"GEM_",    // GEM_PATH, GEM_HOME
	"BUNDLE_", // Bundler
	"LUA_",    // LUA_INIT runs code; LUA_PATH, LUA_CPATH
	"NODE_",   // NODE_OPTIONS, NODE_PATH, NODE_EXTRA_CA_CERTS
	"NPM_CONFIG_",
	"DENO_",       // DENO_CERT, DENO_DIR
	"JAVA_",       // JAVA_TOOL_OPTIONS, JAVA_HOME, JAVA_OPTS
	"_JAVA_",      // _JAVA_OPTIONS
	"JDK_",        // JDK_JAVA_OPTIONS
	"DOTNET_",     // DOTNET_STARTUP_HOOKS, DOTNET_ADDITIONAL_DEPS
	"CORECLR_",    // CORECLR_PROFILER_PATH loads a library
	"COMPLUS_",    // COMPlus_* (the older spelling of DOTNET_*)
	"ASPNETCORE_", // ASPNETCORE_HOSTINGSTARTUPASSEMBLIES loads assemblies
	"MONO_",       // MONO_PATH, MONO_CONFIG, MONO_ENV_OPTIONS
	"R_",          // R_PROFILE, R_ENVIRON, R_LIBS run or load R code
	"ERL_",        // ERL_LIBS, ERL_AFLAGS
	"JULIA_",      // JULIA_LOAD_PATH, JULIA_DEPOT_PATH
	"GUILE_",      // GUILE_LOAD_PATH
	"GST_PLUGIN",  // GStreamer plug-in paths
	"LIBMYSQL_",   // LIBMYSQL_PLUGIN_DIR loads a library
	"GIT_",        // GIT_EXEC_PATH, GIT_SSH_COMMAND, GIT_CONFIG_*
	"XDG_",        // XDG_CONFIG_HOME: config files (git's core.sshCommand, ...)
	"OPENSSL_",    // OPENSSL_CONF, OPENSSL_MODULES, OPENSSL_ENGINES
	"CURL_",       // CURL_CA_BUNDLE, CURL_HOME (a .curlrc)
	"GNUTLS_",
	"KRB5", // KRB5_CONFIG, KRB5CCNAME, KRB5_KTNAME
	"LDAP", // OpenLDAP: LDAPCONF, LDAPRC, LDAPTLS_CACERT, LDAPTLS_REQCERT
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
