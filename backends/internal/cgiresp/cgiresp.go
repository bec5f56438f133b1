// Package cgiresp parses the response head a CGI script writes on its
// standard output (RFC 3875 section 6), for junction's CGI and FastCGI
// backends.
//
// The parser reads from a *bufio.Reader and stops right after the blank line
// that ends the head, so the body stays in the reader. It is strict about
// anything that could smuggle bytes into the client's response head and
// lenient about the rest, as the real scripts junction runs require:
//
//   - Lines end in LF or CRLF. A CR anywhere else in a line is an error, and
//     so is an obs-fold continuation line (a line starting with SP or HTAB):
//     the whole head is refused (the caller answers 502) rather than
//     sanitised, so a script can never shape a header the client sees.
//   - Field names must be RFC 9110 tokens; values must not contain control
//     characters other than HTAB (no CR, LF or NUL).
//   - "Status: 404 Not Found" and "Status: 404" set the status; a missing
//     Status means 200 (AWStats omits it) or 302 for a client redirect.
//   - A first line "HTTP/1.x NNN reason" is accepted as the status (NPH-style
//     output from a non-NPH script, as nginx accepts it).
//   - A head made of exactly one Location header whose value is a local
//     path ("/path?query", not "//host") is a local redirect (RFC 3875
//     6.2.2). A Location with any other header, or with an explicit
//     Status, goes to the client unchanged (a client redirect).
//   - End of input after at least one complete line ends the head (the body
//     is empty), as in scripts that print only a Status line. End of input
//     before any byte is ErrNoHead.
//
// The head is bounded by Limits (64 KiB and 1000 lines by default); memory
// use is bounded by the byte limit whatever the script writes.
package cgiresp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Default limits.
const (
	// DefaultMaxBytes bounds the head: generous for cookies, far below
	// what would let a runaway script exhaust memory.
	DefaultMaxBytes = 64 << 10
	// DefaultMaxLines bounds the number of header lines (Apache's
	// LimitRequestFields is 100 for requests; scripts setting many cookies
	// need more).
	DefaultMaxLines = 1000
)

// Errors returned (wrapped) by Parse. Every one of them means the caller
// should answer 502 Bad Gateway.
var (
	// ErrNoHead means the script wrote nothing at all.
	ErrNoHead = errors.New("cgiresp: script wrote no output")
	// ErrTooLarge means the head exceeded Limits.MaxBytes or MaxLines.
	ErrTooLarge = errors.New("cgiresp: response head too large")
	// ErrMalformed means the head is not a valid CGI response head.
	ErrMalformed = errors.New("cgiresp: malformed response head")
)

// Limits bound a response head. Zero fields take the defaults.
type Limits struct {
	// MaxBytes bounds the head in bytes, line endings included.
	MaxBytes int
	// MaxLines bounds the number of lines, the blank one included.
	MaxLines int
}

// Kind is what a response asks the server to do.
type Kind int

// Response kinds (RFC 3875 6.2).
const (
	// Document is a document response (including error documents).
	Document Kind = iota
	// LocalRedirect asks the server to serve another local path instead.
	LocalRedirect
	// ClientRedirect sends a Location to the client.
	ClientRedirect
)

func (k Kind) String() string {
	switch k {
	case Document:
		return "document"
	case LocalRedirect:
		return "local redirect"
	case ClientRedirect:
		return "client redirect"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Response is a parsed CGI response head.
type Response struct {
	// Status is the HTTP status: the script's, or 200 (302 for a client
	// redirect) when it sent none. It is 0 for a local redirect.
	Status int
	// Reason is the reason phrase the script sent with its status, if any.
	Reason string
	// Header holds the header fields, canonicalised, without Status.
	Header http.Header
	// LocalRedirect is the path (with optional query) of a local redirect,
	// or "" for the other kinds. Header then holds only Location.
	LocalRedirect string
	// StatusLine reports that the head began with an "HTTP/1.x NNN" line.
	StatusLine bool
	// ContentLength is the body length the script declared, or -1. Repeated
	// equal Content-Length fields are collapsed into one; different ones
	// are ErrMalformed (RFC 9110 8.6).
	ContentLength int64
}

// Kind returns what the response asks for.
func (r *Response) Kind() Kind {
	switch {
	case r.LocalRedirect != "":
		return LocalRedirect
	case r.Header.Get("Location") != "":
		return ClientRedirect
	}
	return Document
}

// AppendHead appends the head in CGI form to b: a Status line (left out for a
// local redirect), the header fields sorted by name, and the blank line.
// Parsing the result gives an equal Response (StatusLine aside).
func (r *Response) AppendHead(b []byte) []byte {
	if r.LocalRedirect == "" {
		b = append(b, "Status: "...)
		b = strconv.AppendInt(b, int64(r.Status), 10)
		if r.Reason != "" {
			b = append(b, ' ')
			b = append(b, r.Reason...)
		}
		b = append(b, "\r\n"...)
	}
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range r.Header[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// scratch holds the raw head while it is read; pooled because most heads
// are a few hundred bytes and every request needs one.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Parse reads a response head from br and leaves br positioned at the first
// byte of the body. Errors wrap ErrNoHead, ErrTooLarge, ErrMalformed or the
// read error.
func Parse(br *bufio.Reader, lim Limits) (*Response, error) {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultMaxBytes
	}
	if lim.MaxLines <= 0 {
		lim.MaxLines = DefaultMaxLines
	}
	sp := scratchPool.Get().(*[]byte)
	raw, lines, err := readHead((*sp)[:0], br, lim)
	var head string
	if err == nil {
		// One string for the whole head: names and values are substrings.
		head = string(raw)
	}
	if cap(raw) <= 4*DefaultMaxBytes {
		*sp = raw[:0]
		scratchPool.Put(sp)
	}
	if err != nil {
		return nil, err
	}
	return parseHead(head, lines)
}

// readHead appends the head's bytes to buf up to and including the blank
// line (or end of input) and counts its lines.
func readHead(buf []byte, br *bufio.Reader, lim Limits) ([]byte, int, error) {
	lines := 0
	lineStart := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > lim.MaxBytes {
			return buf, 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, lim.MaxBytes)
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			lines++
			line := buf[lineStart:]
			lineStart = len(buf)
			if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
				if lines == 1 {
					return buf, 0, fmt.Errorf("%w: empty head", ErrMalformed)
				}
				return buf, lines, nil
			}
			if lines >= lim.MaxLines {
				return buf, 0, fmt.Errorf("%w: more than %d lines", ErrTooLarge, lim.MaxLines)
			}
		case errors.Is(err, bufio.ErrBufferFull):
			// A line longer than br's buffer: keep accumulating.
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return buf, 0, ErrNoHead
			}
			if lineStart < len(buf) {
				// An unterminated last line still counts as a line.
				buf = append(buf, '\n')
				lines++
			}
			return buf, lines, nil
		default:
			return buf, 0, fmt.Errorf("cgiresp: reading head: %w", err)
		}
	}
}

// parseHead parses head, which holds lines ending in '\n'.
func parseHead(head string, lines int) (*Response, error) {
	resp := &Response{Header: make(http.Header, lines), ContentLength: -1}
	// One backing array for all single-valued fields, as textproto does.
	vals := make([]string, lines)
	explicit := false
	fields := 0
	for n := 0; head != ""; n++ {
		i := strings.IndexByte(head, '\n')
		line := head[:i]
		head = head[i+1:]
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break
		}
		if n == 0 && strings.HasPrefix(line, "HTTP/") {
			if err := resp.parseStatusLine(line); err != nil {
				return nil, err
			}
			explicit = true
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, fmt.Errorf("%w: obsolete line folding", ErrMalformed)
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return nil, fmt.Errorf("%w: line without a field name: %.40q", ErrMalformed, line)
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validName(name) {
			return nil, fmt.Errorf("%w: bad field name %.40q", ErrMalformed, name)
		}
		if !validValue(value) {
			return nil, fmt.Errorf("%w: control character in field %s", ErrMalformed, name)
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		if key == "Status" {
			if explicit {
				return nil, fmt.Errorf("%w: repeated status", ErrMalformed)
			}
			if err := resp.parseStatus(value); err != nil {
				return nil, err
			}
			explicit = true
			continue
		}
		fields++
		if old := resp.Header[key]; old != nil {
			resp.Header[key] = append(old, value)
			continue
		}
		vals[0] = value
		resp.Header[key] = vals[:1:1]
		vals = vals[1:]
	}
	if err := resp.parseContentLength(); err != nil {
		return nil, err
	}
	loc := resp.Header["Location"]
	switch {
	case explicit:
	case len(loc) > 0 && fields == 1 && isLocalPath(loc[0]):
		resp.LocalRedirect = loc[0]
	case len(loc) > 0:
		resp.Status = http.StatusFound
	default:
		resp.Status = http.StatusOK
	}
	return resp, nil
}

// parseContentLength checks the Content-Length fields: every value (a
// field may hold a comma-separated list) must be the same decimal number.
// Anything else could frame the body two ways, so the head is refused.
func (r *Response) parseContentLength() error {
	r.ContentLength = -1
	vs := r.Header["Content-Length"]
	if len(vs) == 0 {
		return nil
	}
	var first string
	for _, v := range vs {
		for part := range strings.SplitSeq(v, ",") {
			part = trimOWS(part)
			if first == "" {
				first = part
			} else if part != first {
				return fmt.Errorf("%w: conflicting Content-Length %q and %q", ErrMalformed, first, part)
			}
		}
	}
	n, err := strconv.ParseInt(first, 10, 64)
	if err != nil || n < 0 || first[0] == '+' {
		return fmt.Errorf("%w: bad Content-Length %.40q", ErrMalformed, first)
	}
	r.ContentLength = n
	if len(vs) > 1 || len(first) != len(vs[0]) {
		r.Header["Content-Length"] = []string{first}
	}
	return nil
}

// parseStatusLine parses "HTTP/1.x NNN reason".
func (r *Response) parseStatusLine(line string) error {
	proto, rest, _ := strings.Cut(line, " ")
	if proto != "HTTP/1.0" && proto != "HTTP/1.1" {
		return fmt.Errorf("%w: bad status line %.40q", ErrMalformed, line)
	}
	r.StatusLine = true
	return r.parseStatus(trimOWS(rest))
}

// parseStatus parses "NNN reason" or "NNN".
func (r *Response) parseStatus(v string) error {
	code, reason, _ := strings.Cut(v, " ")
	if len(code) != 3 || code[0] < '2' || code[0] > '9' ||
		!isDigit(code[1]) || !isDigit(code[2]) {
		// 1xx is not a final status; net/http accepts up to 999.
		return fmt.Errorf("%w: bad status %.40q", ErrMalformed, v)
	}
	r.Status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	reason = trimOWS(reason)
	if !validValue(reason) {
		return fmt.Errorf("%w: control character in status", ErrMalformed)
	}
	r.Reason = reason
	return nil
}

// isLocalPath reports whether loc is an RFC 3875 local-pathquery: it starts
// with one "/" ("//host" is a network-path reference, not local).
func isLocalPath(loc string) bool {
	return len(loc) > 0 && loc[0] == '/' && (len(loc) == 1 || loc[1] != '/')
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// validName reports whether s is an RFC 9110 token.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validValue reports whether s holds no control characters except HTAB.
// Bytes >= 0x80 (obs-text) are allowed.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
