// Package fastcgi sends requests to one FastCGI application instance
// (php-fpm, or any FastCGI responder listening on TCP or a Unix socket),
// in the RESPONDER role of the FastCGI 1.0 specification
// (https://fastcgi-archives.github.io/FastCGI_Specification.html).
//
// A Backend is one instance. Pools of instances, retries and health
// bookkeeping belong to the balancer, which holds one Backend per instance
// address and calls Check for active health checks.
//
// # Which script runs
//
// The script is junction's decision, made from the decoded URL path:
// StripPrefix is removed, the rest is split after the first segment that
// ends in the extension of Index (".php" by default) — what nginx's
// fastcgi_split_path_info ^(.+?\.php)(/.*)$ does — and Index is appended
// when the script part ends in "/". SCRIPT_FILENAME is Root plus the script
// part, SCRIPT_NAME is StripPrefix plus it, PATH_INFO the rest, and
// DOCUMENT_ROOT is Root (also over a DOCUMENT_ROOT the front server sent:
// it names the front server's files, not the instance's). A path with a NUL
// is refused with 400 and one with a ".." segment (also sent as %2e%2e)
// with 403, so SCRIPT_FILENAME never leaves Root lexically. The instance
// may run on another host, so junction does not look at the file system:
// whether the file exists, and symlinks, are the instance's business
// (php-fpm answers "File not found." with status 404, and its
// security.limit_extensions refuses non-PHP files).
//
// The other parameters come from backends/cgienv, the builder the CGI
// backend uses, so header rules (no HTTP_PROXY, no "_" in header names) are
// the same; PATH is not sent.
//
// # Connections
//
// By default each request dials its own connection (DialTimeout) and
// closes it after the response: a Unix-socket or loopback connect costs
// microseconds, and a fresh connection can never carry a previous
// request's failure. MaxConns bounds the requests in flight with a
// semaphore; a request that cannot get a slot within DialTimeout fails
// with backends.ErrOverloaded.
//
// With KeepAlive, requests carry FCGI_KEEP_CONN and a connection whose
// response ended cleanly (END_REQUEST with REQUEST_COMPLETE, nothing
// after it, the request written whole) is kept, at most KeepAlive of them
// for at most KeepAliveTimeout (package backends/idle). php-fpm gives
// every open connection a worker of its own, idle or not, so the
// connections open to it must stay within pm.max_children: keep-alive
// needs MaxConns (here or in the balancer) at most that, and a request
// takes a kept connection before it dials, so that requests in flight
// plus kept connections stay within MaxConns. Only a request without a
// body and with an idempotent method goes on a kept connection, and is
// sent once more on a new connection when the kept one ends before any
// record of the response (php-fpm closes a worker's connection at
// pm.max_requests); any other request closes a kept connection, freeing
// its worker, and dials. A kept connection is checked with one
// non-blocking MSG_PEEK before reuse (rawconn.Quiet). Check uses a kept
// connection when there is one; while it waits for a connection of its
// own, finished connections are closed rather than kept.
//
// A request with a body is written by github.com/yookoala/gofast's client
// (BEGIN_REQUEST, PARAMS, then the body streamed as STDIN records) on a
// connection junction dialled; its records before the body go out in one
// write. A request without a body — most GETs — is encoded by junction
// with the shared FastCGI wire package and sent in a single write:
// gofast's client allocates two 64 KiB stream buffers and starts three
// goroutines per request, which on a php-fpm pool cost junction 250–290
// µs of CPU per request against about 100 µs this way (nginx scgi_pass →
// junction → php-fpm: 4,000 → 8,200 requests/s on the 2-core test
// machine). gofast's background pool is not used, and neither is its
// response handling:
// gofast parses the CGI head with its own, different rules (it refuses a
// response with neither Status nor Content-Type, and long header lines),
// and a dropped connection looks like a complete response there. Junction
// reads the response records itself, and the head is parsed by
// backends/cgiresp, the parser the CGI backend uses: a missing Status
// means 200, a lone local Location is returned as *backends.LocalRedirect.
// STDERR records are logged at Warn level with the instance and script.
//
// # Request bodies
//
// The instance gets exactly CONTENT_LENGTH bytes. A body of unknown length
// (chunked, from plain HTTP) is refused with 411: php-fpm would see an
// empty body, and junction does not spool bodies. A body that ends short
// closes the connection before the end of STDIN is sent, so the script
// never takes a truncated body for a complete one.
//
// # Errors
//
// Failures before the response head was written are returned from Serve,
// never written: a dial failure as *backends.DialError (the request body has
// not been read: it is read only once the connection is up), a full
// MaxConns or an END_REQUEST with FCGI_OVERLOADED as backends.ErrOverloaded
// (when no body byte was read yet), no response head within Timeout as a
// *backends.Error with status 504, a malformed head or a lost connection
// with status 502. The request context closes the connection, which stops
// the request; Serve then returns the context's error. After the head was
// written, failures end the response early and are logged.
package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/junction-gw/junction/internal/sockaddr"

	"golang.org/x/sync/semaphore"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgienv"
	"github.com/junction-gw/junction/backends/internal/cgiresp"
	"github.com/junction-gw/junction/backends/internal/idle"
	"github.com/junction-gw/junction/internal/rawconn"
)

// Options configure a Backend.
type Options struct {
	// Addr is the instance: "host:port" or "unix:/path/to/socket".
	Addr string
	// Root is the document root on the instance's side: SCRIPT_FILENAME is
	// Root plus the request path (minus StripPrefix), DOCUMENT_ROOT is Root.
	// It must be absolute.
	Root string
	// StripPrefix is removed from the request path before it is mapped
	// under Root ("/app" maps "/app/x.php" to Root+"/x.php"); it stays in
	// SCRIPT_NAME. A request whose path is not under it is answered 404.
	StripPrefix string
	// Index is appended to a path ending in "/"; "" means "index.php". Its
	// extension also splits the path into script and PATH_INFO.
	Index string
	// DialTimeout bounds connecting to the instance and the wait for a
	// MaxConns slot; 0 means 5s.
	DialTimeout time.Duration
	// Timeout bounds each read and write on the connection: the response
	// head must begin within it, and the body must not stall longer; 0
	// means 60s.
	Timeout time.Duration
	// MaxConns bounds the connections open to the instance at once; 0
	// means no bound (the balancer may still limit requests).
	MaxConns int
	// PassEnv names variables of junction's own environment passed as
	// parameters to every request.
	PassEnv []string
	// SetEnv holds fixed parameters for every request.
	SetEnv map[string]string
	// HealthScript, when set, makes Check run this script (a path under
	// Root, like "/ping.php") with a GET request and want a 2xx or 3xx
	// status. Empty makes Check ask the instance FCGI_GET_VALUES, which
	// php-fpm answers without running PHP.
	HealthScript string
	// MaxHeaderBytes bounds the script's response head; 0 means 64 KiB.
	MaxHeaderBytes int
	// KeepAlive is how many idle connections are kept open for reuse
	// (FCGI_KEEP_CONN); 0 closes each connection after its request. See
	// the package doc before setting it: php-fpm gives every open
	// connection a worker of its own.
	KeepAlive int
	// KeepAliveTimeout closes a connection idle that long; 0 means 60s.
	KeepAliveTimeout time.Duration
	// Logger receives STDERR records and failures; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Defaults for zero Options fields.
const (
	// DefaultDialTimeout: a local instance answers a connect at once; one
	// that takes seconds is down or drowning, and the balancer should try
	// another.
	DefaultDialTimeout = 5 * time.Second
	// DefaultTimeout matches nginx's fastcgi_read_timeout and
	// fastcgi_send_timeout (60s).
	DefaultTimeout = 60 * time.Second
	// DefaultIndex is php-fpm's usual index script.
	DefaultIndex = "index.php"
	// DefaultKeepAliveTimeout is nginx's upstream keepalive_timeout.
	DefaultKeepAliveTimeout = 60 * time.Second
)

// Backend sends requests to one FastCGI instance. It implements
// backends.Backend and is safe for concurrent use.
type Backend struct {
	addr        string // as configured, for errors and logs
	network     string
	address     string
	root        string
	prefix      string // without a trailing "/"
	index       string
	ext         string // extension of index: ends the script part of a path
	dialTimeout time.Duration
	timeout     time.Duration
	sem         *semaphore.Weighted
	env         *cgienv.Builder
	limits      cgiresp.Limits
	health      string
	log         *slog.Logger

	// idle holds kept connections; nil without KeepAlive.
	idle *idle.Pool[net.Conn]
	// probing counts health checks waiting on a connection of their own;
	// while one does, finished connections are closed, not kept, so that
	// a worker becomes free to accept it.
	probing atomic.Int32
}

// New validates o and returns a Backend. No connection is made yet.
func New(o Options) (*Backend, error) {
	b := &Backend{
		addr:        o.Addr,
		root:        strings.TrimSuffix(o.Root, "/"),
		prefix:      strings.TrimSuffix(o.StripPrefix, "/"),
		index:       o.Index,
		dialTimeout: o.DialTimeout,
		timeout:     o.Timeout,
		limits:      cgiresp.Limits{MaxBytes: o.MaxHeaderBytes},
		health:      o.HealthScript,
		log:         o.Logger,
	}
	var errs []error
	var err error
	if b.network, b.address, err = parseAddr(o.Addr); err != nil {
		errs = append(errs, err)
	}
	if !strings.HasPrefix(o.Root, "/") {
		errs = append(errs, fmt.Errorf("fastcgi: root %q must be an absolute path", o.Root))
	}
	if b.root == "" {
		b.root = "/"
	}
	if o.StripPrefix != "" && !strings.HasPrefix(o.StripPrefix, "/") {
		errs = append(errs, fmt.Errorf("fastcgi: strip prefix %q must start with /", o.StripPrefix))
	}
	if b.index == "" {
		b.index = DefaultIndex
	}
	if strings.ContainsAny(b.index, "/\x00") || b.index == "." || b.index == ".." {
		errs = append(errs, fmt.Errorf("fastcgi: index %q must be a plain file name", o.Index))
	}
	b.ext = path.Ext(b.index)
	if o.HealthScript != "" && !strings.HasPrefix(o.HealthScript, "/") {
		errs = append(errs, fmt.Errorf("fastcgi: health script %q must start with /", o.HealthScript))
	}
	if o.DialTimeout < 0 || o.Timeout < 0 || o.MaxConns < 0 || o.MaxHeaderBytes < 0 {
		errs = append(errs, errors.New("fastcgi: negative timeout or limit"))
	}
	if b.dialTimeout <= 0 {
		b.dialTimeout = DefaultDialTimeout
	}
	if b.timeout <= 0 {
		b.timeout = DefaultTimeout
	}
	if o.KeepAlive < 0 || o.KeepAliveTimeout < 0 {
		errs = append(errs, errors.New("fastcgi: negative keep-alive count or timeout"))
	}
	if o.KeepAlive > 0 {
		t := o.KeepAliveTimeout
		if t <= 0 {
			t = DefaultKeepAliveTimeout
		}
		b.idle = idle.New(o.KeepAlive, t, rawconn.Quiet)
	}
	if o.MaxConns > 0 {
		b.sem = semaphore.NewWeighted(int64(o.MaxConns))
	}
	if b.env, err = cgienv.New(cgienv.Options{PassEnv: o.PassEnv, SetEnv: o.SetEnv, OmitPath: true}); err != nil {
		errs = append(errs, fmt.Errorf("fastcgi: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With("instance", o.Addr)
	return b, nil
}

// parseAddr splits "unix:/path" and "host:port".
func parseAddr(addr string) (network, address string, err error) {
	a, err := sockaddr.ParseDial(addr)
	if err != nil {
		return "", "", fmt.Errorf("fastcgi: %w", err)
	}
	return a.Network, a.Address, nil
}

// Close closes the kept connections; a connection in use is closed when
// its request ends.
func (b *Backend) Close() error {
	b.idle.Close()
	return nil
}

// Serve sends r to the instance and relays the response. A non-nil error
// means nothing was written to w.
func (b *Backend) Serve(w http.ResponseWriter, r *http.Request) error {
	s, err := b.resolve(r)
	if err != nil {
		return err
	}
	if r.ContentLength < 0 {
		return backends.Errorf(http.StatusLengthRequired, "fastcgi: %s: request body of unknown length", s.Name)
	}
	release, err := b.acquire(r.Context())
	if err != nil {
		return err
	}
	defer release()
	// Only a request junction may send again goes on a kept connection:
	// php-fpm closes a worker's connection some time after its last
	// response (pm.max_requests), and a request sent into that gap fails
	// without reaching PHP. An idempotent request without a body is then
	// sent again; any other gets a new connection, and an idle one is
	// closed first, so that a php-fpm worker holding it comes free to
	// accept the new one.
	replayable := r.ContentLength == 0 && backends.Idempotent(r.Method)
	conn, reused := b.idle.Get()
	if reused && !replayable {
		_ = conn.Close()
		reused = false
	}
	for {
		if !reused {
			if conn, err = b.dial(r.Context()); err != nil {
				return err
			}
		}
		err = b.exchange(w, r, conn, s, reused)
		if reused && errors.Is(err, errStale) && r.Context().Err() == nil {
			reused = false // once: the new connection is not kept from before
			continue
		}
		return err
	}
}

// acquire takes a MaxConns slot, waiting at most DialTimeout.
func (b *Backend) acquire(ctx context.Context) (release func(), err error) {
	if b.sem == nil {
		return func() {}, nil
	}
	if b.sem.TryAcquire(1) {
		return func() { b.sem.Release(1) }, nil
	}
	wctx, cancel := context.WithTimeout(ctx, b.dialTimeout)
	defer cancel()
	if err := b.sem.Acquire(wctx, 1); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fastcgi: %s: waiting for a connection: %w", b.addr, context.Cause(ctx))
		}
		return nil, fmt.Errorf("fastcgi: %s: all connections busy for %v: %w", b.addr, b.dialTimeout, backends.ErrOverloaded)
	}
	return func() { b.sem.Release(1) }, nil
}

// dial connects to the instance.
func (b *Backend) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: b.dialTimeout}
	c, err := d.DialContext(ctx, b.network, b.address)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fastcgi: %s: %w", b.addr, context.Cause(ctx))
		}
		return nil, &backends.DialError{Addr: b.addr, Err: fmt.Errorf("fastcgi: %w", err)}
	}
	// Raw reads and writes (package rawconn says why), and the quiet check
	// a kept connection passes before reuse.
	return rawconn.Wrap(c), nil
}

// keep returns a connection whose request ended cleanly to the idle
// pool, or closes it.
func (b *Backend) keep(c net.Conn) {
	if b.probing.Load() > 0 {
		_ = c.Close()
		return
	}
	b.idle.Put(c)
}

// resolve maps the request path to the script (see the package doc).
func (b *Backend) resolve(r *http.Request) (cgienv.Script, error) {
	p := r.URL.Path
	if strings.IndexByte(p, 0) >= 0 {
		return cgienv.Script{}, backends.Errorf(http.StatusBadRequest, "fastcgi: NUL in path %q", p)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == ".." {
			return cgienv.Script{}, backends.Errorf(http.StatusForbidden, "fastcgi: \"..\" in path %q", p)
		}
	}
	rest, ok := strings.CutPrefix(p, b.prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return cgienv.Script{}, backends.Errorf(http.StatusNotFound, "fastcgi: %s: %q is not under %q", b.addr, p, b.prefix)
	}
	if rest == "" {
		rest = "/"
	}
	script, info := splitScript(rest, b.ext)
	if strings.HasSuffix(script, "/") {
		script += b.index
	}
	return cgienv.Script{
		Filename:     strings.TrimSuffix(b.root, "/") + script,
		Name:         b.prefix + script,
		PathInfo:     info,
		DocumentRoot: b.root,
	}, nil
}

// splitScript splits p (starting with "/") after the first segment ending
// in ext; without one, all of p names the script.
func splitScript(p, ext string) (script, info string) {
	if ext == "" {
		return p, ""
	}
	for i := 1; i < len(p); {
		end := strings.IndexByte(p[i:], '/')
		if end < 0 {
			end = len(p)
		} else {
			end += i
		}
		if seg := p[i:end]; len(seg) > len(ext) && strings.HasSuffix(seg, ext) {
			return p[:end], p[end:]
		}
		i = end + 1
	}
	return p, ""
}

// params builds the FastCGI parameters for r.
func (b *Backend) params(r *http.Request, s cgienv.Script) map[string]string {
	vs := b.env.Vars(r, s)
	m := make(map[string]string, len(vs)+2)
	for _, kv := range vs {
		m[kv.Name] = kv.Value
	}
	// The instance's files, not the front server's.
	m["DOCUMENT_ROOT"] = b.root
	delete(m, "PATH_TRANSLATED")
	if s.PathInfo != "" {
		m["PATH_TRANSLATED"] = strings.TrimSuffix(b.root, "/") + s.PathInfo
	}
	return m
}
