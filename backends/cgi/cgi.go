// Package cgi runs CGI scripts (RFC 3875) for junction, one process per
// request.
//
// Two modes: directory mode maps a URL prefix to a directory of scripts
// (like Apache's ScriptAlias), single-script mode runs one file for every
// request (like an AWStats or php-cgi route).
//
// Which file runs is junction's decision. A SCRIPT_FILENAME from the front
// server is honoured only when, symlinks resolved, it names an executable
// regular file inside Root; otherwise the URL path is walked under Root. A
// ".." path segment (also when sent as %2e%2e) is refused with 403 and a NUL
// with 400; paths are never cleaned silently.
//
// For a shared host (interp.go, owner.go, userdir.go): Interpreters run a
// readable script by its extension as COMMAND... SCRIPT (lighttpd's
// cgi.assign); RunAsOwner runs each script as its file's owner after
// suEXEC's checks, and UserDir maps "~user/" paths to a directory in each
// user's home (Apache's UserDir), run as that user with the same checks.
//
// Each script runs in its own process group with a clean environment
// (backends/cgienv), its directory as working directory and only its own
// path as argv. The whole group is killed when the script exits (so a
// background grandchild holding stdout cannot hold the response open), on
// timeout (SIGTERM, then SIGKILL after a grace period) and when the client
// goes away before its response is complete.
//
// A script may answer first and work after (log, send mail): once its
// response is complete (its Content-Length relayed, or its stdout closed)
// the request ends, and a client that then closes its connection (nginx
// does as soon as it has every byte) ends nothing. The script runs on in
// the background, bounded by Timeout, and keeps its MaxConcurrent slot
// until it exits; Backend.Wait waits for such scripts. Output beyond the
// declared Content-Length is never relayed, and kills the script, then as
// before. A timeout after the head was written also makes the
// response's writes fail, where the codec's writer supports write
// deadlines, so a reader that stopped reading cannot hold the request.
//
// Request bodies are streamed to stdin while stdout is read. The script gets
// exactly CONTENT_LENGTH bytes: a body that ends short kills the script
// (400, or an ended response). That and a client that goes away are the
// client's failures, returned as *backends.ClientError. A body of unknown
// length (chunked: from plain HTTP, or AJP from Apache) is refused with 411
// Length Required, unless MaxBodySpool lets it be read first into an
// unlinked temporary file, bounded (413 beyond), which then is the
// script's stdin with CONTENT_LENGTH set (bodyspool.go). Bodies of known
// length are never spooled.
//
// The response head is parsed by backends/cgiresp; local redirects are
// returned as *backends.LocalRedirect. The body is copied through a 32 KiB
// buffer and flushed after every read from the pipe, so streaming scripts
// stream. NPH scripts (base name starting with "nph-") cannot write the
// status line themselves because junction's front codecs always write it:
// their "HTTP/1.x NNN" line and header fields are parsed and passed on, local
// redirects are not followed, and the body is passed through unaltered.
//
// The process handling is Linux-specific (waitid with WNOWAIT).
package cgi

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgienv"
	"github.com/junction-gw/junction/backends/internal/cgiresp"
	"github.com/junction-gw/junction/internal/spool"
)

// Options configure a Backend.
type Options struct {
	// Name names the backend in logs.
	Name string
	// Root is the directory scripts live under (directory mode).
	Root string
	// URLPrefix is the URL path prefix mapped to Root in directory mode
	// (e.g. "/cgi-bin/"); "" means "/". In single-script mode it is the
	// default SCRIPT_NAME (without a trailing "/").
	URLPrefix string
	// Script, when set, selects single-script mode: every request runs
	// this file. DOCUMENT_ROOT is its directory unless the front server
	// sent one.
	Script string
	// Timeout bounds each request; 0 means 60s.
	Timeout time.Duration
	// MaxConcurrent bounds the scripts running at once; 0 is unlimited. A
	// script holds its slot until it exits, also when it works on after
	// its response.
	MaxConcurrent int
	// MaxQueue is how many requests may wait for a slot; beyond it they get
	// backends.ErrOverloaded (503).
	MaxQueue int
	// QueueTimeout bounds the wait for a slot (then ErrOverloaded); 0 means
	// Timeout.
	QueueTimeout time.Duration
	// PassEnv names variables copied from junction's own environment.
	PassEnv []string
	// SetEnv holds fixed variables for every script.
	SetEnv map[string]string
	// User and Group run scripts as this user and group; junction must run
	// as root for that. "" runs them as junction.
	User, Group string
	// MaxHeaderBytes bounds the script's response head; 0 means 64 KiB.
	MaxHeaderBytes int
	// MaxBodySpool, when positive, lets a request body of unknown length
	// (chunked) be read into an unlinked temporary file first, up to this
	// many bytes, so that the script gets CONTENT_LENGTH and the file as
	// stdin; a longer body is refused with 413. 0 refuses every such
	// body with 411 Length Required.
	MaxBodySpool int64
	// SpoolDir is where those files are created; "" means os.TempDir().
	SpoolDir string
	// Interpreters maps a file extension with its dot (".php"; matched
	// ignoring case) to the command, an absolute path and its arguments,
	// that runs scripts with that extension as COMMAND... SCRIPT. Such a
	// script needs to be readable, not executable, and its extension
	// ends the script part of the path.
	Interpreters map[string][]string
	// RunAsOwner runs each script as the owner and group of its file,
	// after suEXEC's checks (see owner.go); 403 when one fails. It
	// excludes User and Group and needs junction to run as root.
	RunAsOwner bool
	// MinUID and MinGID are the lowest owner uid and group gid RunAsOwner
	// and UserDir accept; 0 means 1000. Root is never accepted.
	MinUID, MinGID uint32
	// UserDir, a path relative to a user's home directory (such as
	// "public_html"), maps URLPrefix+"~user/REST" to HOME/UserDir/REST of
	// that user, run as that user with RunAsOwner's checks. It needs
	// junction to run as root, and may stand instead of Root or beside it
	// (Root then serves the paths not under "~"), not with Script.
	UserDir string
	// Limits are resource limits for every script (see Limits); zero
	// sets none, and scripts start as before.
	Limits Limits
	// Logger receives script stderr lines and failures; nil means
	// slog.Default().
	Logger *slog.Logger
	// Observer, when set, is told about every spawn and how each script
	// ended (for metrics).
	Observer Observer
}

// Observer receives script lifecycle events. Its methods are called from
// request goroutines, concurrently, and must not block.
type Observer interface {
	// Spawned reports a started script and how long the fork and exec
	// took.
	Spawned(d time.Duration)
	// Exited reports a script that exited by itself with code.
	Exited(code int)
	// Signaled reports a script that died of a signal (also one junction
	// sent), by name ("killed", "terminated").
	Signaled(sig string)
	// TimedOut reports a request whose script ran past Timeout.
	TimedOut()
}

// Backend runs CGI scripts. It implements backends.Backend.
type Backend struct {
	name       string
	root       string      // directory mode: Root, absolute, symlinks resolved
	rootInfo   fs.FileInfo // the root directory as resolved at start
	prefix     string      // directory mode: ends in "/"
	script     string      // single-script mode: absolute path
	scriptName string      // single-script mode: default SCRIPT_NAME
	timeout    time.Duration
	queueWait  time.Duration
	maxQueue   int64
	maxRun     int
	waiting    atomic.Int64
	running    atomic.Int64
	timeouts   atomic.Int64
	sem        *semaphore.Weighted
	cred       *syscall.Credential
	runner                 // interpreters, run_as owner, user_dir (owner.go)
	def        settings    // the backend's own; a Route has its own
	noTrace    atomic.Bool // ptrace was refused: limits go through the helper
	execScans  execScans   // for scripts stopped before their execve (execguard_linux.go)
	env        *cgienv.Builder
	limits     cgiresp.Limits
	maxSpool   int64  // MaxBodySpool; 0: 411 for a body of unknown length
	spoolDir   string // SpoolDir
	log        *slog.Logger
	obs        Observer
	// grace is how long a script may take to exit after SIGTERM, and how
	// long stdout may stay open after the script exited.
	grace time.Duration

	bgMu   sync.Mutex
	bgN    int           // scripts finished in the background (detach)
	bgIdle chan struct{} // closed when bgN drops to 0, for Wait
}

var _ backends.Backend = (*Backend)(nil)

// Defaults.
const (
	// DefaultTimeout matches the usual web server CGI timeouts (Apache
	// Timeout 60s, nginx *_read_timeout 60s).
	DefaultTimeout = 60 * time.Second
	// killGrace is what a script gets between SIGTERM and SIGKILL.
	killGrace = 2 * time.Second
)

// New validates o and returns a Backend.
func New(o Options) (*Backend, error) {
	b := &Backend{
		name:      o.Name,
		timeout:   o.Timeout,
		queueWait: o.QueueTimeout,
		maxQueue:  int64(max(o.MaxQueue, 0)),
		maxRun:    max(o.MaxConcurrent, 0),
		limits:    cgiresp.Limits{MaxBytes: o.MaxHeaderBytes},
		maxSpool:  o.MaxBodySpool,
		spoolDir:  o.SpoolDir,
		log:       o.Logger,
		obs:       o.Observer,
		grace:     killGrace,
	}
	if b.timeout <= 0 {
		b.timeout = DefaultTimeout
	}
	if b.queueWait <= 0 {
		// A request that waited longer than a script may run is not
		// worth running.
		b.queueWait = b.timeout
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With("backend", o.Name)
	var errs []error
	prefix := o.URLPrefix
	if prefix == "" {
		prefix = "/"
	}
	if !strings.HasPrefix(prefix, "/") {
		errs = append(errs, fmt.Errorf("cgi: %s: url prefix %q must start with /", o.Name, o.URLPrefix))
	}
	errs = append(errs, b.initRunner(o)...)
	switch {
	case o.Script != "":
		if err := b.initScript(o.Script, prefix); err != nil {
			errs = append(errs, err)
		}
	case o.Root == "" && o.UserDir != "":
		b.prefix = withSlash(prefix)
	default:
		if err := b.initRoot(o.Root, prefix); err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	if b.cred, err = credential(o.User, o.Group); err != nil {
		errs = append(errs, fmt.Errorf("cgi: %s: %w", o.Name, err))
	}
	b.initAccess()
	if b.env, err = cgienv.New(cgienv.Options{PassEnv: o.PassEnv, SetEnv: o.SetEnv}); err != nil {
		errs = append(errs, fmt.Errorf("cgi: %s: %w", o.Name, err))
	}
	if o.MaxConcurrent < 0 || o.MaxQueue < 0 {
		errs = append(errs, fmt.Errorf("cgi: %s: negative concurrency limits", o.Name))
	}
	if o.MaxBodySpool < 0 {
		errs = append(errs, fmt.Errorf("cgi: %s: negative body spool bound", o.Name))
	}
	if o.SpoolDir != "" {
		if fi, err := os.Stat(o.SpoolDir); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("cgi: %s: spool_dir %s is not a directory", o.Name, o.SpoolDir))
		}
	}
	if o.MaxConcurrent > 0 {
		b.sem = semaphore.NewWeighted(int64(o.MaxConcurrent))
	}
	b.def = settings{b: b, timeout: b.timeout, limits: o.Limits}
	b.def.releaseFn = b.def.release
	if b.def.lim, err = b.limiter(o.Limits); err != nil {
		errs = append(errs, fmt.Errorf("cgi: %s: %w", o.Name, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Backend) initScript(script, prefix string) error {
	abs, err := filepath.Abs(script)
	if err != nil {
		return fmt.Errorf("cgi: %s: script: %w", b.name, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("cgi: %s: script: %w", b.name, err)
	}
	cmd := b.interp.lookup(filepath.Base(abs))
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("cgi: %s: script %s is not a regular file", b.name, abs)
	case cmd == nil && fi.Mode()&0o111 == 0:
		return fmt.Errorf("cgi: %s: script %s is not an executable regular file", b.name, abs)
	}
	b.script = abs
	if cmd != nil {
		b.singleArgv = commandLine(cmd, abs)
	}
	b.scriptName = strings.TrimSuffix(prefix, "/")
	return nil
}

func (b *Backend) initRoot(root, prefix string) error {
	if root == "" {
		return fmt.Errorf("cgi: %s: either root or script is required", b.name)
	}
	abs, err := filepath.Abs(root)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return fmt.Errorf("cgi: %s: root: %w", b.name, err)
	}
	fi, err := os.Stat(abs)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("cgi: %s: root %s is not a directory", b.name, root)
	}
	b.root = abs
	b.rootInfo = fi
	b.prefix = withSlash(prefix)
	return nil
}

// withSlash returns prefix ending in "/".
func withSlash(prefix string) string {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix
}

// credential resolves the user and group scripts run as. It returns nil
// when scripts run as junction.
func credential(userName, groupName string) (*syscall.Credential, error) {
	if userName == "" && groupName == "" {
		return nil, nil
	}
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	if userName != "" {
		u, err := user.Lookup(userName)
		if err != nil {
			if u, err = user.LookupId(userName); err != nil {
				return nil, fmt.Errorf("user %q: %w", userName, err)
			}
		}
		uid, gid = parseID(u.Uid), parseID(u.Gid)
	}
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			if g, err = user.LookupGroupId(groupName); err != nil {
				return nil, fmt.Errorf("group %q: %w", groupName, err)
			}
		}
		gid = parseID(g.Gid)
	}
	if os.Geteuid() != 0 {
		if uid == uint32(os.Geteuid()) && gid == uint32(os.Getegid()) {
			return nil, nil
		}
		return nil, fmt.Errorf("running scripts as user %q group %q needs junction to run as root", userName, groupName)
	}
	return &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{gid}}, nil
}

func parseID(s string) uint32 {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return ^uint32(0) // never matches; os/user returns numeric ids on Unix
	}
	return uint32(n)
}

// Serve runs the script r names. An error means nothing was written.
func (b *Backend) Serve(w http.ResponseWriter, r *http.Request) error {
	return b.serve(w, r, &b.def)
}

// serve runs the script r names with the settings st.
func (b *Backend) serve(w http.ResponseWriter, r *http.Request, st *settings) error {
	if r.ContentLength < 0 && b.maxSpool <= 0 {
		return &backends.Error{Status: http.StatusLengthRequired, Err: errUnknownLength}
	}
	if r.ContentLength > 0 && r.Body == nil {
		return &backends.Error{Status: http.StatusBadRequest, Err: errors.New("cgi: CONTENT_LENGTH without a body")}
	}
	s, err := b.resolve(r)
	if err != nil {
		return err
	}
	var body *spool.File
	if r.ContentLength < 0 {
		// Before taking a slot: a slow upload holds no script's place.
		if r, body, err = b.spoolBody(r, s); err != nil {
			return err
		}
		// The script has its own descriptor once started.
		defer func() { _ = body.Close() }() // unlinked: closing only frees it

	}
	if err := b.acquire(r.Context(), st.sub); err != nil {
		return err
	}
	// The slot belongs to the script from here: release frees it when the
	// script is reaped, not when Serve returns.
	b.running.Add(1)
	return b.run(w, r, s, st, body.Stdin())
}

// release frees the slot of a script that has exited, or failed to start.
func (b *Backend) release() {
	b.running.Add(-1)
	if b.sem != nil {
		b.sem.Release(1)
	}
}

// Stats is a point-in-time view of a Backend's load, for the status page.
type Stats struct {
	// InUse is the number of scripts running now. A script holds its
	// slot until it exits.
	InUse int
	// Max is MaxConcurrent; 0 means unlimited.
	Max int
	// Queue is the number of requests waiting for a slot.
	Queue int
	// Timeouts counts requests whose script ran past Timeout since the
	// Backend was created.
	Timeouts int64
}

// Stats returns the backend's current load. It is safe to call at any
// time, concurrently with Serve.
func (b *Backend) Stats() Stats {
	return Stats{
		InUse:    int(b.running.Load()),
		Max:      b.maxRun,
		Queue:    int(b.waiting.Load()),
		Timeouts: b.timeouts.Load(),
	}
}
