// Package shadow sends a copy of a route's requests to a second backend
// and compares the two answers, while the client gets only the first.
//
// The client's request never waits for the copy: once the primary
// backend has answered, the copy goes into a bounded queue (dropped and
// counted when the queue is full) and a few workers send it to the shadow
// backend with their own context and timeout, which the client's request
// ending does not cancel. Each pair is compared on the configured aspects
// (status, Content-Type, Location, body SHA-256, named headers), counted
// as same, different or error (the shadow failed before answering), and
// differences are logged at a bounded rate and kept for the status page.
package shadow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/vars"
)

// Results counted per pair.
const (
	Same      = "same"
	Different = "different"
	Error     = "error"   // the shadow backend failed before answering
	Dropped   = "dropped" // not shadowed: queue full, body too large, body unreadable
)

// Aspects a pair can be compared on. Any other aspect is "header:NAME".
const (
	AspectStatus      = "status"
	AspectContentType = "content_type"
	AspectLocation    = "location"
	AspectBody        = "body"
	headerPrefix      = "header:"
)

// Defaults for the zero Config fields.
const (
	DefaultQueue   = 64
	DefaultMaxBody = 1 << 20
	DefaultTimeout = 30 * time.Second
	DefaultWorkers = 4
)

// DefaultCompare is what a pair is compared on when Config.Compare is
// empty.
var DefaultCompare = []string{AspectStatus, AspectContentType, AspectBody}

// DefaultMethods are the methods shadowed when Config.Methods is empty:
// only those that change nothing may safely run twice.
var DefaultMethods = []string{http.MethodGet, http.MethodHead}

// ValidAspect reports whether a is an aspect Compare accepts.
func ValidAspect(a string) bool {
	switch a {
	case AspectStatus, AspectContentType, AspectLocation, AspectBody:
		return true
	}
	name, ok := strings.CutPrefix(a, headerPrefix)
	return ok && vars.ValidToken(name)
}

// Observer counts results (one of the result constants); the metrics
// package provides one per route.
type Observer interface {
	Result(result string)
}

// Config configures a shadowed route.
type Config struct {
	// Route names the route in logs, metrics and the status page (its
	// prefix).
	Route string
	// Primary answers the client; Shadow gets the copies.
	Primary, Shadow backends.Backend
	// ShadowName is the shadow backend's name, for logs and the status
	// page.
	ShadowName string
	// Percent of the eligible requests copied, 0 to 100.
	Percent float64
	// Methods shadowed; default DefaultMethods.
	Methods []string
	// Compare lists the aspects compared; default DefaultCompare.
	Compare []string
	// Queue bounds the copies waiting for a worker; default DefaultQueue.
	Queue int
	// MaxBody is the largest request body copied; default DefaultMaxBody.
	// A request with a larger body is not shadowed (counted as dropped).
	MaxBody int64
	// Timeout bounds each copy's exchange with the shadow backend;
	// default DefaultTimeout.
	Timeout time.Duration
	// Workers send copies concurrently; default DefaultWorkers.
	Workers int
	// Logger receives differences (at most LogPerMinute a minute) and
	// shadow failures at debug level.
	Logger *slog.Logger
	// Observer, if set, counts every result.
	Observer Observer
}

// LogPerMinute bounds the differences logged per route and minute.
const LogPerMinute = 10

// keptDifferences is how many recent differences Stats reports.
const keptDifferences = 10

// Backend is a backends.Backend that serves with the primary and copies
// eligible requests to the shadow. Close stops its workers.
type Backend struct {
	cfg     Config
	methods []string
	compare []string
	queue   chan *job
	done    chan struct{}
	base    context.Context // the copies' parent, cancelled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  sync.Once

	counts [4]atomic.Int64 // by resultIndex

	mu       sync.Mutex
	last     []Difference // newest last, at most keptDifferences
	logStart time.Time    // the current one-minute logging window
	logged   int          // differences logged in it
}

var _ backends.Backend = (*Backend)(nil)

// New starts the workers of a shadowed route.
func New(cfg Config) *Backend {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Backend{cfg: cfg, queue: make(chan *job, cfg.Queue), done: make(chan struct{})}
	b.base, b.cancel = context.WithCancel(context.Background())
	b.methods = cfg.Methods
	if len(b.methods) == 0 {
		b.methods = DefaultMethods
	}
	b.compare = cfg.Compare
	if len(b.compare) == 0 {
		b.compare = DefaultCompare
	}
	for range cfg.Workers {
		b.wg.Go(b.work)
	}
	return b
}

// Close stops taking copies, cancels the copies in progress and waits
// for their workers; copies still queued or cut short are counted as
// dropped.
func (b *Backend) Close() {
	b.closed.Do(func() { close(b.done); b.cancel() })
	b.wg.Wait()
	for {
		select {
		case <-b.queue:
			b.count(Dropped)
		default:
			return
		}
	}
}

// job is one copied request and the primary's answer to it.
type job struct {
	req     *http.Request // detached: no context, no body (run sets both)
	vars    vars.Vars     // deep copy (the codec's buffers are reused); nil for plain HTTP
	body    []byte
	line    string // "GET /path?q HTTP/1.1", for logs
	primary outcome
}

// outcome is one backend's answer, reduced to what is compared.
type outcome struct {
	Status      int    `json:"status"`
	ContentType string `json:"content_type,omitempty"`
	Location    string `json:"location,omitempty"`
	Digest      string `json:"body_sha256"`
	headers     http.Header
}

// Serve answers r with the primary backend and queues a copy for the
// shadow when r is eligible.
func (b *Backend) Serve(w http.ResponseWriter, r *http.Request) error {
	if !b.eligible(r) {
		return b.cfg.Primary.Serve(w, r)
	}
	body, ok, err := b.copyBody(r)
	if err != nil {
		return err
	}
	if !ok {
		b.count(Dropped)
		return b.cfg.Primary.Serve(w, r)
	}
	// The copy is the request as this route got it (headers included:
	// an authorizer in front has removed the client's Variable-* fields
	// and added its own), taken before the primary may change it.
	j := detach(r, body)
	rec := newRecorder(w)
	err = b.cfg.Primary.Serve(rec, r)
	var lr *backends.LocalRedirect
	switch {
	case errors.As(err, &lr):
		// junction follows it through the routes: the request it leads
		// to is shadowed if its route says so.
		return err
	case err != nil && backends.IsClientError(err):
		return err // the client went away or sent a broken body: nothing to compare
	case err != nil && !rec.wrote:
		// The client sees the error page the listener writes for err:
		// compare against that.
		page := newRecorder(discard{h: http.Header{}})
		backends.WriteError(page, r, err, nil)
		j.primary = page.outcome()
		b.enqueue(j)
		return err
	}
	j.primary = rec.outcome()
	b.enqueue(j)
	return err
}

func (b *Backend) eligible(r *http.Request) bool {
	if !slices.Contains(b.methods, r.Method) {
		return false
	}
	if r.Header.Get("Upgrade") != "" {
		// A WebSocket or other upgrade is a connection, not an answer
		// to compare: a copy would open a second one on the shadow.
		return false
	}
	switch p := b.cfg.Percent; {
	case p >= 100:
		return true
	case p <= 0:
		return false
	default:
		return rand.Float64()*100 < p
	}
}

// copyBody reads r's body when it is small enough to copy and gives r a
// body that replays it. ok is false when the request is not to be
// shadowed (body too large); r then still has its whole body. An error
// means reading the client's body failed and nothing was sent anywhere.
func (b *Backend) copyBody(r *http.Request) (body []byte, ok bool, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, true, nil
	}
	if r.ContentLength > b.cfg.MaxBody {
		return nil, false, nil
	}
	orig := r.Body
	buf, rerr := io.ReadAll(io.LimitReader(orig, b.cfg.MaxBody+1))
	rest := io.Reader(orig)
	if rerr != nil {
		rest = errReader{rerr}
	}
	replay := struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), rest), orig}
	r.Body = replay
	if rerr != nil || int64(len(buf)) > b.cfg.MaxBody {
		// Let the primary meet the failure (or the rest of the body).
		return nil, false, nil
	}
	return buf, true, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// detach copies what the shadow is sent of r into a job: nothing in it
// shares memory with r, whose strings may point into buffers the codec
// reuses once r is answered.
func detach(r *http.Request, body []byte) *job {
	c := &http.Request{
		Method:     strings.Clone(r.Method),
		URL:        cloneURL(r.URL),
		Proto:      strings.Clone(r.Proto),
		ProtoMajor: r.ProtoMajor,
		ProtoMinor: r.ProtoMinor,
		Header:     make(http.Header, len(r.Header)),
		Host:       strings.Clone(r.Host),
		RemoteAddr: strings.Clone(r.RemoteAddr),
		RequestURI: strings.Clone(r.RequestURI),
		TLS:        r.TLS,
	}
	for k, vs := range r.Header {
		cv := make([]string, len(vs))
		for i, v := range vs {
			cv[i] = strings.Clone(v)
		}
		c.Header[strings.Clone(k)] = cv
	}
	j := &job{req: c, body: body, line: c.Method + " " + c.RequestURI + " " + c.Proto}
	if v := vars.FromContext(r.Context()); v != nil {
		j.vars = cloneVars(v)
	}
	return j
}

func cloneURL(u *url.URL) *url.URL {
	if u == nil {
		return &url.URL{}
	}
	c := &url.URL{Scheme: strings.Clone(u.Scheme), Opaque: strings.Clone(u.Opaque), Host: strings.Clone(u.Host),
		Path: strings.Clone(u.Path), RawPath: strings.Clone(u.RawPath), OmitHost: u.OmitHost, ForceQuery: u.ForceQuery,
		RawQuery: strings.Clone(u.RawQuery), Fragment: strings.Clone(u.Fragment), RawFragment: strings.Clone(u.RawFragment)}
	if u.User != nil {
		name := strings.Clone(u.User.Username())
		if p, ok := u.User.Password(); ok {
			c.User = url.UserPassword(name, strings.Clone(p))
		} else {
			c.User = url.User(name)
		}
	}
	return c
}

// enqueue queues the copy unless the queue is full or the route closed.
func (b *Backend) enqueue(j *job) {
	select {
	case <-b.done:
		b.count(Dropped)
	case b.queue <- j:
	default:
		b.count(Dropped)
	}
}

func cloneVars(v vars.Vars) vars.Vars {
	out := make(vars.Vars, len(v))
	for i, kv := range v {
		out[i] = vars.Var{Name: strings.Clone(kv.Name), Value: strings.Clone(kv.Value)}
	}
	return out
}

func (b *Backend) work() {
	for {
		select {
		case <-b.done:
			return
		case j := <-b.queue:
			b.run(j)
		}
	}
}

// run sends one copy to the shadow and compares the answers.
func (b *Backend) run(j *job) {
	ctx, cancel := context.WithTimeout(b.base, b.cfg.Timeout)
	defer cancel()
	if j.vars != nil {
		ctx = vars.NewContext(ctx, j.vars)
	}
	req := j.req.WithContext(ctx)
	req.Body, req.ContentLength = http.NoBody, 0
	if len(j.body) > 0 {
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(j.body)), int64(len(j.body))
	}
	rec := newRecorder(discard{h: http.Header{}})
	err := b.cfg.Shadow.Serve(rec, req)
	if b.base.Err() != nil {
		b.count(Dropped) // cut short by Close
		return
	}
	if err != nil && !rec.wrote {
		b.count(Error)
		b.cfg.Logger.Debug("shadow failed", "route", b.cfg.Route, "backend", b.cfg.ShadowName, "request", j.line, "err", err)
		return
	}
	got := rec.outcome()
	if err != nil {
		// It failed mid-answer: what was written is not its answer.
		b.count(Error)
		b.cfg.Logger.Debug("shadow failed mid-answer", "route", b.cfg.Route, "backend", b.cfg.ShadowName, "request", j.line, "err", err)
		return
	}
	if diff := b.differ(j.primary, got, j.req.Method == http.MethodHead); len(diff) > 0 {
		b.count(Different)
		b.noteDifference(j, got, diff)
		return
	}
	b.count(Same)
}

// differ lists the compared aspects on which a and c differ. The bodies
// of answers to HEAD are not compared: a CGI script prints its body for
// HEAD too (the front server drops it), an HTTP application sends none.
func (b *Backend) differ(a, c outcome, head bool) []string {
	var out []string
	for _, asp := range b.compare {
		var same bool
		switch asp {
		case AspectStatus:
			same = a.Status == c.Status
		case AspectContentType:
			same = a.ContentType == c.ContentType
		case AspectLocation:
			same = a.Location == c.Location
		case AspectBody:
			same = head || a.Digest == c.Digest
		default:
			name, _ := strings.CutPrefix(asp, headerPrefix)
			same = slices.Equal(a.headers.Values(name), c.headers.Values(name))
		}
		if !same {
			out = append(out, asp)
		}
	}
	return out
}

// Difference is one compared pair whose answers differed.
type Difference struct {
	Time    time.Time `json:"time"`
	Request string    `json:"request"`
	Aspects []string  `json:"aspects"`
	Primary outcome   `json:"primary"`
	Shadow  outcome   `json:"shadow"`
}

func (b *Backend) noteDifference(j *job, got outcome, aspects []string) {
	now := time.Now()
	d := Difference{Time: now, Request: j.line, Aspects: aspects, Primary: j.primary, Shadow: got}
	b.mu.Lock()
	b.last = append(b.last, d)
	if len(b.last) > keptDifferences {
		b.last = slices.Delete(b.last, 0, len(b.last)-keptDifferences)
	}
	if now.Sub(b.logStart) >= time.Minute {
		b.logStart, b.logged = now, 0
	}
	log := b.logged < LogPerMinute
	if log {
		b.logged++
	}
	b.mu.Unlock()
	if log {
		b.cfg.Logger.Warn("shadow answer differs", "route", b.cfg.Route, "backend", b.cfg.ShadowName,
			"request", j.line, "aspects", strings.Join(aspects, ","),
			"primary_status", j.primary.Status, "shadow_status", got.Status,
			"primary_body_sha256", j.primary.Digest, "shadow_body_sha256", got.Digest)
	}
}

var resultNames = [...]string{Same, Different, Error, Dropped}

func (b *Backend) count(result string) {
	b.counts[slices.Index(resultNames[:], result)].Add(1)
	if b.cfg.Observer != nil {
		b.cfg.Observer.Result(result)
	}
}

// Stats is a shadowed route's results since it was built.
type Stats struct {
	Route     string       `json:"route"`
	Backend   string       `json:"shadow_backend"`
	Percent   float64      `json:"percent"`
	Same      int64        `json:"same"`
	Different int64        `json:"different"`
	Errors    int64        `json:"errors"`
	Dropped   int64        `json:"dropped"`
	Last      []Difference `json:"last_differences"`
}

// MatchRate is the share of compared pairs that matched, or -1 before
// any pair was compared.
func (s Stats) MatchRate() float64 {
	n := s.Same + s.Different
	if n == 0 {
		return -1
	}
	return float64(s.Same) / float64(n)
}

// Stats returns the route's results, newest difference first.
func (b *Backend) Stats() Stats {
	s := Stats{Route: b.cfg.Route, Backend: b.cfg.ShadowName, Percent: b.cfg.Percent,
		Same: b.counts[0].Load(), Different: b.counts[1].Load(), Errors: b.counts[2].Load(), Dropped: b.counts[3].Load()}
	b.mu.Lock()
	s.Last = slices.Clone(b.last)
	b.mu.Unlock()
	slices.Reverse(s.Last)
	return s
}

// recorder passes a response through to w (discard for the shadow) and
// keeps what is compared: the status, the headers as sent, the body's
// SHA-256.
type recorder struct {
	w       http.ResponseWriter
	wrote   bool
	status  int
	headers http.Header
	sum     hashWriter
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newRecorder(w http.ResponseWriter) *recorder {
	return &recorder{w: w, sum: sha256.New()}
}

func (rc *recorder) Header() http.Header { return rc.w.Header() }

func (rc *recorder) WriteHeader(code int) {
	if !rc.wrote && code >= 200 {
		rc.wrote = true
		rc.status = code
		rc.headers = rc.w.Header().Clone()
	}
	rc.w.WriteHeader(code)
}

func (rc *recorder) Write(p []byte) (int, error) {
	if !rc.wrote {
		rc.WriteHeader(http.StatusOK)
	}
	rc.sum.Write(p)
	return rc.w.Write(p)
}

// Unwrap lets http.ResponseController reach the listener's writer
// (flushes, deadlines).
func (rc *recorder) Unwrap() http.ResponseWriter { return rc.w }

// FlushError keeps a streamed answer streaming, and tells the backend
// when the client is gone. A flush before any header sends a 200 head.
func (rc *recorder) FlushError() error {
	if !rc.wrote {
		rc.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(rc.w).Flush()
}

// Flush is FlushError for callers that take no error.
func (rc *recorder) Flush() { _ = rc.FlushError() }

func (rc *recorder) outcome() outcome {
	o := outcome{Status: rc.status, headers: rc.headers, Digest: hex.EncodeToString(rc.sum.Sum(nil))}
	if !rc.wrote {
		// Nothing written: the listener answers 200 with the headers set.
		o.Status, o.headers = http.StatusOK, rc.w.Header().Clone()
	}
	o.ContentType = o.headers.Get("Content-Type")
	o.Location = o.headers.Get("Location")
	return o
}

// discard is the shadow's response writer: nothing reaches a client.
type discard struct{ h http.Header }

func (d discard) Header() http.Header       { return d.h }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}

// Flush succeeds: a shadow backend streams as it would to a client.
func (discard) Flush() {}

// String describes the route for logs.
func (b *Backend) String() string {
	return fmt.Sprintf("shadow(%s → %s, %g%%)", b.cfg.Route, b.cfg.ShadowName, b.cfg.Percent)
}
