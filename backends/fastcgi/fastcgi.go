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
	// StatusPath is php-fpm's pm.status_path ("/status"). When set,
	// Capacity asks it, with "?json", how many workers the instance has;
	// otherwise Capacity asks FCGI_GET_VALUES. It is sent as SCRIPT_NAME
	// as it is, without StripPrefix: php-fpm compares it whole.
	StatusPath string
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
	status      string // StatusPath
	log         *slog.Logger

	// idle holds kept connections; nil without KeepAlive.
	idle *idle.Pool[net.Conn]
	// probing counts health checks waiting on a connection of their own;
	// while one does, finished connections are closed, not kept, so that
	// a worker becomes free to accept it.
	probing atomic.Int32
	// capacity is the Max Capacity learned last (0: none yet).
	capacity atomic.Int64
}

var _ backends.Backend = (*Backend)(nil)

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
		status:      o.StatusPath,
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
	if o.StatusPath != "" && (!strings.HasPrefix(o.StatusPath, "/") || strings.ContainsAny(o.StatusPath, "?#\x00")) {
		errs = append(errs, fmt.Errorf("fastcgi: status path %q must start with / and hold no query", o.StatusPath))
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
	if b.env, err = cgienv.New(cgienv.Options{PassEnv: o.PassEnv, SetEnv: o.SetEnv, OmitPath: true, OwnDocumentRoot: true}); err != nil {
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
	return b.serveScript(w, r, s)
}

// serveScript is Serve once the script is known.
func (b *Backend) serveScript(w http.ResponseWriter, r *http.Request, s cgienv.Script) error {
	if r.ContentLength < 0 {
		return backends.Errorf(http.StatusLengthRequired, "fastcgi: %s: request body of unknown length", s.Name)
	}
	release, err := b.acquire(r.Context())
	if err != nil {
		return err
	}
	defer release()
	conn, reused := b.kept(r)
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
			return nil, backends.ContextError(ctx, "fastcgi: "+b.addr+": waiting for a connection")
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
			return nil, backends.ContextError(ctx, "fastcgi: "+b.addr)
		}
		return nil, &backends.DialError{Addr: b.addr, Err: fmt.Errorf("fastcgi: %w", err)}
	}
	// Raw reads and writes (package rawconn says why), and the quiet check
	// a kept connection passes before reuse.
	return rawconn.Wrap(c), nil
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
