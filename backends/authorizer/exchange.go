package authorizer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/yookoala/gofast"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgienv"
	"github.com/junction-gw/junction/internal/fcgiwire"
	"github.com/junction-gw/junction/internal/rawconn"
)

// answer is what the authorizer said.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// session is gofast's handling of an authorizer request: the spec's
// parameter filter (no CONTENT_LENGTH, PATH_INFO, PATH_TRANSLATED,
// SCRIPT_NAME), then the request on the client.
var session = gofast.Chain(gofast.FilterAuthReqParams)(gofast.BasicSession)

// maxStderr bounds what of an authorizer's STDERR output is logged.
const maxStderr = 4 << 10

// ask gets the authorizer's answer for r: instances round robin, the next
// one when an instance cannot be reached.
func (a *Authorizer) ask(r *http.Request) (*answer, error) {
	params := a.params(r)
	first := int(a.rr.Add(1) - 1)
	var errs []error
	timeouts := 0
	for i := range a.instances {
		in := a.instances[(first+i)%len(a.instances)]
		ans, err := a.askInstance(r, in, params)
		var de *backends.DialError
		if !errors.As(err, &de) {
			return ans, err
		}
		if r.Context().Err() != nil {
			return nil, backends.ContextError(r.Context(), a.prefix())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err) {
			timeouts++
		}
		errs = append(errs, err)
	}
	status := http.StatusBadGateway
	if timeouts == len(errs) {
		status = http.StatusGatewayTimeout // nginx: "upstream timed out while connecting"
	}
	// %v: the dial errors are the authorizer's, not the guarded backend's
	// (a *backends.DialError in the chain would read as a retryable
	// failure of the backend's instance).
	return nil, &backends.Error{Status: status, Err: fmt.Errorf("%s: no instance reachable: %v", a.prefix(), errors.Join(errs...))}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// askInstance runs the exchange with in: on a kept connection when there
// is one (and once more on a fresh one when the kept one turns out dead
// before answering), else on a new connection. A *backends.DialError
// means in could not be reached.
func (a *Authorizer) askInstance(r *http.Request, in *instance, params map[string]string) (*answer, error) {
	if c, ok := in.idle.Get(); ok {
		c.reused = true
		ans, err := a.exchange(r, in, c, params)
		if err == nil || !c.stale() {
			return ans, err
		}
		a.log.Debug("authorizer: kept connection closed before answering; dialling", "authorizer", a.name, "instance", in.addr.String(), "err", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.dial)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, in.addr.Network, in.addr.Address)
	if err != nil {
		return nil, &backends.DialError{Addr: in.addr.String(), Err: err}
	}
	return a.exchange(r, in, &conn{Conn: rawconn.Wrap(nc)}, params)
}

// exchange sends the authorizer request on c and reads the answer. It
// puts c back in in's idle pool when the exchange ended cleanly, and
// closes it otherwise.
func (a *Authorizer) exchange(r *http.Request, in *instance, c *conn, params map[string]string) (_ *answer, err error) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	c.reset()
	keep := false
	defer func() {
		if keep {
			in.idle.Put(c)
		} else {
			_ = c.Close() // the exchange failed; the error says why
		}
	}()
	if err := c.SetDeadline(time.Now().Add(a.timeout)); err != nil {
		return nil, &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("%s: %s: %w", a.prefix(), in.addr, err)}
	}

	cl, err := gofast.SimpleClientFactory(func() (net.Conn, error) { return c, nil })()
	if err != nil {
		return nil, &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("%s: %s: %w", a.prefix(), in.addr, err)}
	}
	// gofast reads the request's context (cancelled when the client goes
	// or the timeout passes) and nothing else of Raw.
	req := &gofast.Request{Raw: r.WithContext(ctx), Role: gofast.RoleAuthorizer, Params: params}
	var resp *gofast.ResponsePipe
	var aborted sync.Once
	abort := func() {
		aborted.Do(func() {
			_ = c.Conn.Close() // unblocks gofast's reader
			if resp != nil {
				resp.Close()
			}
		})
	}
	resp, err = session(cl, req)
	if err != nil {
		return nil, &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("%s: %s: %w", a.prefix(), in.addr, err)}
	}
	// gofast's reader blocks writing to its stdout pipe for good when its
	// response parser stops reading early (a header line over 1 KiB, a
	// line without a colon): closing the pipes and the connection at the
	// deadline, or when the client goes, ends every goroutine it started.
	c.mu.Lock()
	c.abort = abort
	bad := c.head.bad != ""
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.abort = nil
		c.mu.Unlock()
	}()
	if bad { // found before resp was set
		abort()
	}
	stop := context.AfterFunc(ctx, abort)
	rec := &recorder{max: a.maxAnswer}
	stderr := &limitedBuffer{max: maxStderr}
	werr := resp.WriteTo(rec, stderr)
	fired := !stop()
	if stderr.Len() > 0 {
		a.log.Warn("authorizer wrote to stderr", "authorizer", a.name, "instance", in.addr.String(),
			"stderr", stderr.String(), "truncated", stderr.over)
	}

	// END_REQUEST read means gofast's parser had the whole answer (its
	// reader hands each record over before it reads the next), even when
	// the watchdog fired just after.
	st := c.snapshot()
	if st.bad != "" {
		return nil, &backends.Error{Status: http.StatusBadGateway,
			Err: fmt.Errorf("%s: %s: malformed answer (gofast refuses %s)", a.prefix(), in.addr, st.bad)}
	}
	if !st.ended {
		if r.Context().Err() != nil {
			return nil, backends.ContextError(r.Context(), a.prefix())
		}
		why := st.err
		if fired || ctx.Err() != nil || isTimeout(why) {
			return nil, &backends.Error{Status: http.StatusGatewayTimeout,
				Err: fmt.Errorf("%s: %s: no complete answer within %v: %w", a.prefix(), in.addr, a.timeout, context.DeadlineExceeded)}
		}
		if why == nil {
			why = errors.New("malformed record stream")
		}
		return nil, &backends.Error{Status: http.StatusBadGateway,
			Err: fmt.Errorf("%s: %s: connection ended before END_REQUEST (%d bytes read): %w", a.prefix(), in.addr, st.got, why)}
	}
	defer func() { keep = keep && !fired }()
	switch st.status {
	case fcgiwire.StatusRequestComplete:
	case fcgiwire.StatusOverloaded:
		keep = true
		return nil, &backends.Error{Status: http.StatusServiceUnavailable, Err: fmt.Errorf("%s: %s: overloaded (FCGI_OVERLOADED)", a.prefix(), in.addr)}
	case fcgiwire.StatusUnknownRole:
		keep = true
		return nil, &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("%s: %s: the application does not take the Authorizer role (FCGI_UNKNOWN_ROLE)", a.prefix(), in.addr)}
	default:
		return nil, &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("%s: %s: END_REQUEST protocol status %d", a.prefix(), in.addr, st.status)}
	}
	keep = true
	if werr == nil {
		werr = statusField(rec)
	}
	switch {
	case werr != nil:
		return nil, &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("%s: %s: malformed answer: %w", a.prefix(), in.addr, werr)}
	case rec.code < 200 || rec.code > 999:
		// A 1xx is informational, not an answer to relay (101 would
		// switch the client's connection to the authorizer's body).
		return nil, &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("%s: %s: malformed answer: status %d", a.prefix(), in.addr, rec.code)}
	case rec.over && rec.code != http.StatusOK:
		return nil, &backends.Error{Status: http.StatusBadGateway, Err: fmt.Errorf("%s: %s: answer body over %d bytes", a.prefix(), in.addr, a.maxAnswer)}
	}
	return &answer{status: rec.code, header: rec.header, body: rec.body}, nil
}

// statusField applies a status line gofast took for a header: gofast reads
// the status only from a field spelled "Status", but CGI field names are
// case-insensitive (RFC 3875 6.3), so "status: 403" is the answer's status
// too, and a denial must never read as a 200. The first status other than
// 200 wins (a denial is never outvoted); a malformed one is an error.
func statusField(rec *recorder) error {
	vs := rec.header.Values("Status")
	if len(vs) == 0 {
		return nil
	}
	code := 0
	for _, v := range vs {
		if len(v) < 3 || !isDigits([]byte(v[:3])) || len(v) > 3 && v[3] != ' ' {
			return fmt.Errorf("bad Status %.32q", v)
		}
		if c := int(v[0]-'0')*100 + int(v[1]-'0')*10 + int(v[2]-'0'); c != http.StatusOK && code == 0 {
			code = c
		}
	}
	rec.header.Del("Status")
	if code != 0 {
		rec.code = code
	}
	return nil
}

// params returns the authorizer request's parameters: the CGI variables
// of r (cgienv, with the front server's variables), SCRIPT_FILENAME the
// configured script. gofast's FilterAuthReqParams removes what the spec
// says an authorizer does not get.
func (a *Authorizer) params(r *http.Request) map[string]string {
	vs := a.env.Vars(r, cgienv.Script{Filename: a.script})
	m := make(map[string]string, len(vs))
	for _, kv := range vs {
		m[kv.Name] = kv.Value
	}
	return m
}

// conn is a connection to an authorizer instance that follows the
// FastCGI records gofast reads from it, to know whether the answer ended
// with END_REQUEST and with which protocol status: gofast's client ends
// its response silently on a read error or a malformed record, so an
// authorizer that died midway would otherwise look like one that
// answered.
type conn struct {
	net.Conn
	reused bool

	mu     sync.Mutex // gofast's reader may still run when the watchdog fired
	hdr    [fcgiwire.HeaderLen]byte
	hn     int
	typ    fcgiwire.Type
	left   int // content bytes left in the current record
	pad    int // padding bytes left
	end    [8]byte
	en     int
	ended  bool
	status uint8
	got    int64
	err    error
	head   headCheck
	abort  func() // ends the exchange at once; set per exchange
}

// state is what conn saw of one exchange.
type state struct {
	ended  bool
	status uint8
	got    int64
	err    error
	bad    string // why gofast's parser will refuse the answer's head
}

func (c *conn) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hn, c.left, c.pad, c.en = 0, 0, 0, 0
	c.ended, c.status, c.got, c.err = false, 0, 0, nil
	c.head = headCheck{}
}

func (c *conn) snapshot() state {
	c.mu.Lock()
	defer c.mu.Unlock()
	return state{ended: c.ended, status: c.status, got: c.got, err: c.err, bad: c.head.bad}
}

// stale reports whether a reused connection failed before a byte of the
// answer: the application closed it while it sat idle (php-fpm does at
// pm.max_requests), so a fresh connection may be tried.
func (c *conn) stale() bool {
	st := c.snapshot()
	return c.reused && st.got == 0 && !st.ended
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	wasBad := c.head.bad != ""
	c.scan(p[:n])
	if err != nil && c.err == nil && !c.ended {
		c.err = err
	}
	abort := c.abort
	bad := !wasBad && c.head.bad != ""
	c.mu.Unlock()
	if bad && abort != nil {
		abort()
	}
	return n, err
}

// scan follows the record stream through p. c.mu is held.
func (c *conn) scan(p []byte) {
	c.got += int64(len(p))
	for len(p) > 0 && !c.ended {
		if c.hn < len(c.hdr) {
			k := copy(c.hdr[c.hn:], p)
			c.hn += k
			p = p[k:]
			if c.hn < len(c.hdr) {
				return
			}
			h := fcgiwire.ParseHeader(c.hdr[:])
			c.typ, c.left, c.pad, c.en = h.Type, int(h.ContentLength), int(h.PaddingLength), 0
		} else if c.left > 0 {
			k := min(len(p), c.left)
			switch c.typ {
			case fcgiwire.TypeEndRequest:
				if c.en < len(c.end) {
					c.en += copy(c.end[c.en:], p[:k])
				}
			case fcgiwire.TypeStdout:
				c.head.scan(p[:k])
			}
			c.left -= k
			p = p[k:]
		} else {
			k := min(len(p), c.pad)
			c.pad -= k
			p = p[k:]
		}
		if c.hn == len(c.hdr) && c.left == 0 && c.pad == 0 {
			if c.typ == fcgiwire.TypeEndRequest && c.en == len(c.end) {
				c.ended, c.status = true, c.end[4]
			}
			c.hn = 0
		}
	}
}

// recorder is the http.ResponseWriter gofast parses the answer into. It
// never fails a write (gofast would stop reading its pipe and block its
// reader), it drops what exceeds max and says so.
type recorder struct {
	header http.Header
	code   int
	body   []byte
	max    int
	over   bool
}

func (w *recorder) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *recorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	room := w.max - len(w.body)
	if len(p) > room {
		w.over = true
		w.body = append(w.body, p[:max(room, 0)]...)
	} else {
		w.body = append(w.body, p...)
	}
	return len(p), nil
}

// limitedBuffer keeps the first max bytes written to it and drops the
// rest, never failing a write.
type limitedBuffer struct {
	b    []byte
	max  int
	over bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	room := l.max - len(l.b)
	if len(p) > room {
		l.over = true
		p = p[:max(room, 0)]
	}
	l.b = append(l.b, p...)
	return n, nil
}

func (l *limitedBuffer) Len() int       { return len(l.b) }
func (l *limitedBuffer) String() string { return string(l.b) }

// gofastLine is the buffer size of gofast's response head reader: a head
// line (with its "\n") longer than this is refused.
const gofastLine = 1024

// headCheck applies the rules of gofast's response head parser
// (ResponsePipe.WriteTo) to the answer's STDOUT as it arrives. When that
// parser refuses a head it stops reading its pipe, and gofast's record
// reader then blocks writing the next record to it: the exchange would
// only end at the timeout. Knowing the head is refused, the exchange ends
// at once with a 502 that says why.
type headCheck struct {
	done    bool   // the blank line ending the head was seen
	line    []byte // the current line, up to gofastLine+1 bytes
	lines   int
	status  bool
	typeSet bool // Content-Type or Location
	bad     string
}

func (h *headCheck) scan(p []byte) {
	for len(p) > 0 && !h.done && h.bad == "" {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		p = p[len(chunk):]
		if room := gofastLine + 1 - len(h.line); room > 0 {
			h.line = append(h.line, chunk[:min(len(chunk), room)]...)
		}
		if len(h.line) > gofastLine {
			h.bad = "a head line longer than gofast's 1 KiB limit"
			return
		}
		if i >= 0 {
			h.endLine()
			h.line = h.line[:0]
		}
	}
}

// endLine checks one complete head line as gofast does.
func (h *headCheck) endLine() {
	line := bytes.TrimRight(h.line, "\r\n")
	if len(line) == 0 {
		h.done = true
		switch {
		case h.lines == 0:
			h.bad = "an empty head"
		case !h.status && !h.typeSet:
			h.bad = "no Status, Content-Type or Location"
		}
		return
	}
	h.lines++
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		h.bad = fmt.Sprintf("a head line without a colon: %.64q", line)
		return
	}
	name, value = bytes.TrimSpace(name), bytes.TrimSpace(value)
	switch {
	case string(name) == "Status":
		if len(value) < 3 || !isDigits(value[:3]) {
			h.bad = fmt.Sprintf("a bad Status %.32q", value)
		}
		h.status = true
	case http.CanonicalHeaderKey(string(name)) == "Content-Type", http.CanonicalHeaderKey(string(name)) == "Location":
		h.typeSet = h.typeSet || len(value) > 0
	}
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
