// Package config loads junction's configuration file.
//
// Loading has three phases: decode (exact: an unknown key is an error, so a
// typo never silently falls back to a default), defaults (every default
// states its reason), and Validate, which reports every problem at once,
// each naming its key path, e.g. "listeners[1].address: ...".
//
// The file is YAML unless its name ends in .toml or .json. Inside string
// values (never keys, never comments), ${NAME} and $NAME are replaced with
// environment variables after the file is parsed, so a value can never
// change the file's structure (an undefined variable is an error naming
// its key; ${NAME:-fallback} gives a fallback; $$ is a literal $).
//
// Relative paths in a file (backend root and script, unix socket paths)
// resolve against the directory holding the file; for Parse and the
// embedded Default they resolve against the current working directory.
//
// Keys are case-insensitive, so backend names are too: "Scripts" and
// "scripts" name the same backend. This package is the only one in junction
// that knows the file format; the rest of the program sees these structs.
package config

import (
	"io/fs"
	"time"
)

// Config is the whole configuration file.
type Config struct {
	// Log says how junction logs. Logs go to standard error.
	Log Log `mapstructure:"log"`

	// ShutdownTimeout is how long junction waits, after SIGTERM or SIGINT,
	// for requests in flight to finish before it closes their connections.
	// Default 30s.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`

	// Listeners are the sockets junction accepts connections on, one
	// protocol each. At least one is required. "junction inetd" serves its
	// one connection with the first listener's protocol, limits, backend and
	// routes (its address is not used).
	Listeners []Listener `mapstructure:"listeners"`

	// Routes send requests to a backend by URL path prefix. They are tried
	// in order before a listener's own backend; the first match wins. They
	// apply to every listener.
	Routes []Route `mapstructure:"routes"`

	// Backends are the named places requests go. Listeners and routes refer
	// to them by name.
	Backends map[string]*Backend `mapstructure:"backends"`

	// Version identifies the configuration: the first 12 hex digits of the
	// SHA-256 of the file's bytes, set by Load and Parse. It is not a key
	// in the file.
	Version string `mapstructure:"-"`

	// Metrics configures the operations listener: Prometheus metrics at
	// /metrics, /healthz, /readyz and the status page at /status and
	// /status.json. "junction inetd" never starts it.
	Metrics Metrics `mapstructure:"metrics"`

	// User and Group (names or numeric ids) are who junction runs as
	// after binding its sockets, when it is started as root: it switches
	// every thread to User, with Group (default: User's primary group)
	// and User's supplementary groups. Spawned app instances and CGI
	// scripts then run as that user too. Started as another user with
	// these set, junction refuses to start. Default: keep the identity
	// junction was started with.
	User  string `mapstructure:"user"`
	Group string `mapstructure:"group"`
}

// Log configures logging.
type Log struct {
	// Level is the least severe level logged: debug, info, warn or error.
	// Default info.
	Level string `mapstructure:"level"`
	// Format is text (key=value lines) or json (one object per line).
	// Default text.
	Format string `mapstructure:"format"`
	// Access is the access log format: combined (Apache's combined format
	// followed by listener, protocol, backend, instance, upstream_time
	// and duration fields), json (one object per line) or off. Default
	// off: the front server already logs every request.
	Access string `mapstructure:"access"`
	// AccessFile is the file access log lines are appended to (created
	// with mode 0640 if missing, opened before junction drops
	// privileges). Default: standard output, as container platforms
	// collect it. Changing Access or AccessFile needs a restart.
	AccessFile string `mapstructure:"access_file"`
}

// Protocol names accepted in Listener.Protocol.
const (
	ProtocolSCGI    = "scgi"
	ProtocolFastCGI = "fastcgi"
	ProtocolAJP     = "ajp"
	ProtocolHTTP    = "http"
)

// TimeoutOff is the value of a timeout turned off (written -1 in the file).
// Only write_timeout accepts it.
const TimeoutOff time.Duration = -1

// Listener is one socket and the protocol spoken on it.
type Listener struct {
	// Protocol is what the front server speaks: scgi, fastcgi, ajp (AJP13)
	// or http (plain HTTP/1.1, for trying junction out and for tests).
	// Required.
	Protocol string `mapstructure:"protocol"`

	// Address is "host:port" for TCP (host may be an IP address, a name,
	// or empty for every interface; port 0 picks a free port) or
	// "unix:/path/to/socket" for a unix domain socket. Required.
	Address string `mapstructure:"address"`

	// Backend names the backend (under backends) that serves requests no
	// route matches. It may be omitted when routes are given; unmatched
	// requests then get 404.
	Backend string `mapstructure:"backend"`

	// SocketMode is the permission of a unix socket, in octal: "0660"
	// (quote it; an unquoted YAML 0660 also works). Unix sockets only.
	// Default: left as created (the umask decides). The socket appears at
	// its path with its mode, owner and group already set: junction binds
	// it in a private directory next to the path and renames it there.
	SocketMode FileMode `mapstructure:"socket_mode"`
	// SocketOwner is the user (name or numeric id) that owns a unix
	// socket; changing it needs privileges. Unix sockets only.
	SocketOwner string `mapstructure:"socket_owner"`
	// SocketGroup is the group (name or numeric id) of a unix socket,
	// typically the web server's group so that only it may connect. Unix
	// sockets only.
	SocketGroup string `mapstructure:"socket_group"`

	// Allow lists the clients that may connect to a TCP listener: IP
	// addresses ("10.0.0.5", "::1") and CIDR networks ("10.0.0.0/24",
	// "fd00::/8"). A connection from anywhere else is closed as it is
	// accepted, logged and counted. Default: any client. Any protocol;
	// not on unix sockets, which socket_mode and socket_group guard. An
	// scgi or fastcgi listener that other hosts can reach and that has no
	// allow list is warned about at every start and by junction check:
	// SCGI and FastCGI carry no authentication, so whoever connects may
	// run scripts with any request variables.
	Allow []string `mapstructure:"allow"`

	// MaxHeaderBytes bounds the request head a front server may send (the
	// SCGI netstring, the FastCGI params, the AJP forward-request packet,
	// the HTTP request line and headers). Default 65536 (64 KiB).
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
	// ReadTimeout bounds reading the request head and each read of the
	// request body. Default 30s.
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// IdleTimeout is how long a kept-alive connection (FastCGI, AJP, HTTP)
	// may wait for its next request. Default 60s.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// WriteTimeout bounds each write of the response to the front server:
	// a front server (or a client behind a front server that does not
	// buffer) that takes nothing for this long loses the response. Streams
	// may run for as long as they keep being read. Default 60s, as nginx's
	// send_timeout and Apache's Timeout; -1 turns it off. On an http
	// listener it bounds the whole response (net/http's WriteTimeout), and
	// there is no default.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`

	// MaxConns bounds the concurrent connections of a fastcgi listener (it
	// is also the FCGI_MAX_CONNS value reported to the web server).
	// Default 256. FastCGI only.
	MaxConns int `mapstructure:"max_conns"`
	// MaxRequests bounds the requests in flight over all connections of a
	// fastcgi listener (FCGI_MAX_REQS). Default 1024. FastCGI only.
	MaxRequests int `mapstructure:"max_requests"`
	// MaxRequestsPerConn bounds the requests in flight on one multiplexed
	// FastCGI connection. Default 1, or 64 with multiplex. FastCGI only.
	MaxRequestsPerConn int `mapstructure:"max_requests_per_conn"`
	// Multiplex lets a FastCGI web server send several requests at once on
	// one connection (FCGI_MPXS_CONNS). nginx and Apache never do; default
	// false. FastCGI only.
	Multiplex bool `mapstructure:"multiplex"`

	// PacketSize is the largest AJP packet, 8192 to 65536; it must match
	// the web server's (mod_jk worker.*.max_packet_size,
	// mod_proxy_ajp ProxyIOBufferSize). Default 8192. AJP only.
	PacketSize int `mapstructure:"packet_size"`
	// Secret is the AJP shared secret: requests must carry it (mod_jk
	// worker.*.secret, mod_proxy_ajp secret=). AJP has no other
	// authentication, so an ajp listener on a non-loopback address must
	// set a secret. AJP only.
	Secret string `mapstructure:"secret"`
	// Route is this instance's AJP route (jvmRoute) for sticky sessions.
	// AJP only.
	Route string `mapstructure:"route"`

	// ResponseBuffering says whether junction holds a response until it
	// has read the whole request body: auto, on or off. Some front servers
	// stop sending the request body once response bytes arrive (nginx),
	// others read no response before they have sent the whole body
	// (Apache's mod_proxy_scgi); a script or app that answers while it
	// reads (one that echoes its input, or streams progress) then waits
	// for the front server forever, and it for junction. Holding the
	// response (in memory up to 64 KiB, then in an unlinked temporary
	// file) breaks the cycle; responses to requests without a body, and
	// whatever a script writes after reading its body, still stream.
	// auto holds for the protocols whose stock front servers need it:
	// scgi, fastcgi and http, not ajp (whose own flow control keeps
	// Apache's mod_proxy_ajp and mod_jk reading). Default auto.
	ResponseBuffering string `mapstructure:"response_buffering"`
	// MaxSpoolBytes bounds the bytes this listener keeps in temporary
	// files at once: held responses (ResponseBuffering) and, on a
	// multiplexed fastcgi listener, request bodies that arrive faster than
	// their handlers read them. Beyond it the request that needs more is
	// answered 503 Service Unavailable with Retry-After. Bytes, or a size
	// with a unit ("256MiB"). Default 134217728 (128 MiB).
	MaxSpoolBytes Size `mapstructure:"max_spool_bytes"`
}

// Route sends a URL path prefix to a backend.
type Route struct {
	// Prefix is matched against the start of the request path; it must
	// begin with "/". Required.
	Prefix string `mapstructure:"prefix"`
	// Backend names the backend that serves matching requests. Required.
	Backend string `mapstructure:"backend"`
	// Shadow, if set, copies the route's requests to a second backend
	// and compares the answers; clients get Backend's alone.
	Shadow *Shadow `mapstructure:"shadow"`
	// Authorizer, when set, is asked before Backend whether each request
	// may proceed (the FastCGI Authorizer role). Default: none.
	Authorizer *Authorizer `mapstructure:"authorizer"`

	// Timeout, MaxConcurrent and Limits override the cgi backend's own
	// for this route's requests (a slow report script next to fast ones),
	// without a second backend. Only on a route to a cgi backend.
	// Timeout replaces the backend's timeout. MaxConcurrent bounds this
	// route's scripts inside the backend's max_concurrent (each takes a
	// slot of both; waiting requests count against the backend's
	// max_queue and queue_timeout). Limits override the backend's limits
	// key by key. Default: the backend's.
	Timeout       time.Duration `mapstructure:"timeout"`
	MaxConcurrent int           `mapstructure:"max_concurrent"`
	Limits        *Limits       `mapstructure:"limits"`
}

// Backend types accepted in Backend.Type.
const (
	BackendCGI     = "cgi"
	BackendHTTP    = "http"
	BackendFastCGI = "fastcgi"
)

// Backend is a named place requests go.
type Backend struct {
	// Type is the kind of backend. Required. One of:
	//   - cgi: run a CGI script (RFC 3875) per request;
	//   - http: proxy to a pool of HTTP/1.1 application instances;
	//   - fastcgi: send to a pool of FastCGI instances (php-fpm).
	// Keys that belong to another type are errors.
	Type string `mapstructure:"type"`

	// Root, for cgi, is a directory of CGI scripts (like Apache's ScriptAlias): the
	// request path after URLPrefix names the script and the rest of the
	// path becomes PATH_INFO. Scripts can never be reached outside Root: a
	// ".." segment (also encoded) is refused, and a SCRIPT_FILENAME sent by
	// the front server is honoured only when, symlinks resolved, it names an
	// executable file inside Root. Exactly one of Root and Script is
	// required.
	//
	// For fastcgi, Root is the document root on the instance's side
	// (required, absolute, not resolved against the file's directory):
	// SCRIPT_FILENAME is Root plus the request path (minus StripPrefix).
	Root string `mapstructure:"root"`
	// URLPrefix is the part of the request path that maps onto Root, e.g.
	// "/cgi-bin/": "/cgi-bin/env.sh/x" runs Root/env.sh with PATH_INFO
	// "/x". Default "/" with Root. With Script it is the SCRIPT_NAME the
	// script sees (default empty).
	URLPrefix string `mapstructure:"url_prefix"`
	// Script is one CGI program that serves every request sent to this
	// backend (an AWStats or php-cgi style route). Exactly one of Root and
	// Script is required.
	Script string `mapstructure:"script"`

	// Timeout bounds one run of a script, from start to its last byte of
	// output; a script still running then is killed with its whole process
	// group. Default 60s, nginx's default scgi/fastcgi read timeout.
	// For fastcgi it bounds each read and write on the instance connection
	// (the response head must start within it); for http it is the default
	// of ResponseHeaderTimeout.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxConcurrent bounds the scripts of this backend running at once.
	// Default 64.
	MaxConcurrent int `mapstructure:"max_concurrent"`
	// MaxQueue bounds the requests waiting for a free slot; more get
	// 503 with Retry-After. Default: the same as MaxConcurrent.
	MaxQueue int `mapstructure:"max_queue"`
	// QueueTimeout is how long a request may wait for a free slot (a cgi
	// slot, or a pool instance under its max_conns) before it gets 503.
	// Default 10s.
	QueueTimeout time.Duration `mapstructure:"queue_timeout"`

	// PassEnv names variables of junction's own environment to pass to
	// scripts (e.g. TZ, PERL5LIB); for fastcgi they are sent as request
	// parameters. Scripts otherwise see only the CGI
	// variables and PATH=/usr/local/bin:/usr/bin:/bin. Variables set here
	// or in SetEnv are trusted; the same names sent by a front server are
	// not (see the security notes in README.md).
	PassEnv []string `mapstructure:"pass_env"`
	// SetEnv sets extra variables for scripts. Names are case-insensitive
	// in the file and are exported upper-cased.
	SetEnv map[string]string `mapstructure:"set_env"`

	// User and Group (names or numeric ids) run scripts as another
	// account; junction must run as root for that. Default: junction's own.
	User  string `mapstructure:"user"`
	Group string `mapstructure:"group"`
	// AllowRoot lets scripts run as root when junction runs as root and
	// neither this backend's user nor the top-level user is set. Without
	// it junction refuses to start as root (as php-fpm does without -R);
	// with it, junction warns at every start. Default false.
	AllowRoot bool `mapstructure:"allow_root"`

	// Interpreters (cgi) maps a file extension to the command that runs
	// scripts with it, like lighttpd's cgi.assign:
	// {".php": /usr/bin/php-cgi, ".py": [/usr/bin/python3, -u]}. The
	// command is an absolute path, or a list of it and its arguments; the
	// script's path is added last. Such a script needs to be readable,
	// not executable, and its extension ends the script part of the path
	// (/x/page.php/extra has PATH_INFO /extra). Files with other
	// extensions still need the exec bit. Extensions match ignoring case.
	// php-cgi runs unmodified: REDIRECT_STATUS is set for its
	// cgi.force_redirect check.
	Interpreters map[string]Command `mapstructure:"interpreters"`
	// RunAs (cgi), when "owner", runs each script as the owner and group
	// of its file, after suEXEC's checks: owner and group at or above
	// MinUID and MinGID and never root; the script and its directory not
	// writable by group or others; no setuid or setgid bit; inside Root
	// after symlink resolution; the directory the request named it in
	// owned by the same user (a link in alice's directory to bob's script
	// is refused). A failed check is 403, its reason logged. It excludes
	// user and group, and needs junction to run as root (without the
	// top-level user). Default: empty (user and group decide).
	RunAs string `mapstructure:"run_as"`
	// MinUID and MinGID (cgi, with run_as or user_dir) are the lowest
	// owner uid and group gid a script may have. Default 1000, the first
	// regular account (UID_MIN); 0 means the default.
	MinUID int `mapstructure:"min_uid"`
	MinGID int `mapstructure:"min_gid"`
	// UserDir (cgi) maps URLPrefix + "~alice/REST" to HOME/UserDir/REST
	// of alice (HOME from her passwd entry), run as alice with run_as
	// owner's checks, the file owned by alice, like Apache's UserDir with
	// suEXEC; e.g. public_html. It may stand instead of Root (then only ~
	// paths are served) or beside it (Root serves the rest), not with
	// Script, and needs junction to run as root.
	UserDir string `mapstructure:"user_dir"`

	// MaxHeaderBytes bounds the response header a script may print before
	// its body (cgi and fastcgi). Default 65536 (64 KiB).
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`

	// MaxBodySpool (cgi) lets a request body without a length (a chunked
	// upload: git push beyond http.postBuffer, curl -T -, AJP from
	// Apache) reach scripts, which need CONTENT_LENGTH: junction reads it
	// first into an unlinked temporary file in SpoolDir, up to this size
	// (bytes, or with a unit: "64MiB"), then runs the script with
	// CONTENT_LENGTH set and the file as stdin, like nginx's request
	// buffering bounded by client_max_body_size. A longer body is refused
	// with 413. Default 0: such bodies are refused with 411 Length
	// Required, as before the key existed; the temporary files are disk
	// (or, with /tmp on tmpfs, memory) that the operator sizes. Bodies
	// with a length are streamed to the script as always, never spooled.
	MaxBodySpool Size `mapstructure:"max_body_spool"`
	// SpoolDir (cgi, with max_body_spool) is the directory those
	// temporary files are created in. Default: $TMPDIR, else /tmp.
	SpoolDir string `mapstructure:"spool_dir"`

	// Limits are resource limits for each script (cpu, memory,
	// processes, open_files, file_size, nice), in force before its
	// first instruction. cgi only. Default: none.
	Limits *Limits `mapstructure:"limits"`

	// The keys below are for the pool types, http and fastcgi. Each
	// instance gets its own connection handling; the pool spreads requests
	// over them, retries failed attempts on another instance, and takes
	// failing instances out of rotation.

	// Instances are the application instances: "host:port" or
	// "unix:/path" strings, or objects {address, weight, max_conns,
	// backup, route}. Exactly one of Instances and Spawn is required.
	Instances []Instance `mapstructure:"instances"`
	// Spawn makes junction start and supervise the instances itself; the
	// pool then follows the running processes. Exactly one of Instances
	// and Spawn is required.
	Spawn *Spawn `mapstructure:"spawn"`
	// Discovery finds the instances in DNS (A/AAAA or SRV records, as
	// Consul's DNS interface and Kubernetes headless Services publish
	// them) instead of a fixed list, and follows their changes. Exactly
	// one of Instances, Spawn and Discovery is required.
	Discovery *Discovery `mapstructure:"discovery"`
	// Balance is the policy choosing an instance per request:
	// round_robin, weighted_round_robin (smooth, by weight), least_conn
	// (fewest requests in flight per weight), random_two (the less busy of
	// two random instances) or hash (same key, same instance; see
	// HashKey). Default round_robin.
	Balance string `mapstructure:"balance"`
	// HashKey is the hash policy's key: "ip" (client address),
	// "header:Name" or "cookie:Name". Required with balance: hash, and only
	// allowed then. Requests without the key are spread round robin.
	HashKey string `mapstructure:"hash_key"`
	// StickyCookie names a cookie junction sets to the instance that
	// served a client, and honours while that instance is available.
	// Default: none. Independently, instances with a route get sessions
	// whose JSESSIONID ends in ".route" (the Tomcat jvmRoute convention).
	StickyCookie string `mapstructure:"sticky_cookie"`
	// MaxAttempts bounds the tries per request, each on a different
	// instance. Default 0: every instance at most once.
	MaxAttempts int `mapstructure:"max_attempts"`
	// QueueSize is how many requests may wait when every instance is at
	// its max_conns; more get 503 at once. Default 128.
	QueueSize int `mapstructure:"queue_size"`
	// MaxConns bounds the requests in flight per instance (an instance's
	// own max_conns overrides it). Default 0: no bound.
	//
	// On a fastcgi pool it may be "auto": each instance is asked how many
	// requests it serves at once after every passing health check
	// (php-fpm's status page with health.status_path, else
	// FCGI_GET_VALUES), and that bounds it; while an instance cannot tell
	// (php-fpm with pm = dynamic or ondemand, or before its first answer),
	// MaxConnsFallback does. auto turns active checks on.
	MaxConns Conns `mapstructure:"max_conns"`
	// MaxConnsFallback bounds an instance's requests in flight while its
	// capacity is unknown. Required with max_conns: auto, and only allowed
	// then. fastcgi only.
	MaxConnsFallback int `mapstructure:"max_conns_fallback"`
	// Health configures active health checks and passive ejection.
	Health Health `mapstructure:"health"`
	// DialTimeout bounds connecting to an instance. Default 5s.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// ResponseHeaderTimeout bounds the wait for an http instance's
	// response head after the request was sent; the body may take longer.
	// Default: Timeout. http only.
	ResponseHeaderTimeout time.Duration `mapstructure:"response_header_timeout"`
	// StripPrefix is removed from the request path before it reaches the
	// instance ("/app" turns "/app/x" into "/x"); a path not under it gets
	// 404. Default empty: the full path is forwarded (http), and
	// SCRIPT_FILENAME is Root plus the full path (fastcgi).
	StripPrefix string `mapstructure:"strip_prefix"`
	// Index is the script appended to a fastcgi path ending in "/";
	// its extension also splits the path into script and PATH_INFO.
	// Default index.php. fastcgi only.
	Index string `mapstructure:"index"`
	// KeepAlive is how many idle connections to each instance are kept
	// open for the next request (FCGI_KEEP_CONN), like nginx's upstream
	// keepalive with fastcgi_keep_conn on. Default 0: a connection per
	// request. php-fpm gives each open connection a worker of its own, so
	// it needs max_conns, set to at most the instance's worker count
	// (pm.max_children), or max_conns: auto, which learns it. "auto" keeps
	// every connection whose request ended: at most as many as the
	// instance had requests in flight, which max_conns bounds. fastcgi
	// only.
	KeepAlive Conns `mapstructure:"keepalive"`
	// KeepAliveTimeout closes a kept connection idle that long. Default
	// 60s (nginx's keepalive_timeout). fastcgi only.
	KeepAliveTimeout time.Duration `mapstructure:"keepalive_timeout"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Address is "host:port", "unix:/path", "fd:N" or "systemd:NAME" to
	// serve the operations endpoints on. Empty: no operations listener.
	// Keep it on loopback or a private network: the status page shows
	// backend addresses and errors. Changing it needs a restart.
	Address string `mapstructure:"address"`
}

// FileMode is a unix permission written in octal ("0660"). Zero means
// unset.
type FileMode fs.FileMode
