// Package accesslog writes one line per request, in the Apache/nginx
// "combined" format with junction's fields appended, or as JSON.
//
// A combined line is Apache's
//
//	%h - %u [%t] "%r" %>s %b "%{Referer}i" "%{User-Agent}i"
//
// followed by listener="…" protocol="…" backend="…" instance="…"
// upstream_time=S duration=S (seconds, millisecond precision; "-" when
// the request reached no upstream), so tools that parse combined logs
// still read it. Quoted fields escape '"', '\\', control and non-ASCII
// bytes as \xHH, as nginx does, so a request cannot forge log lines.
// Lines are written whole, one Write per line, under a mutex.
package accesslog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/junction-gw/junction/cmd/junction/internal/httpcount"

	"github.com/junction-gw/junction/vars"
)

// Format selects the line format.
type Format int

// Formats.
const (
	Off Format = iota
	Combined
	JSON
)

// ParseFormat parses the config value: "combined", "json" or "off".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "combined":
		return Combined, nil
	case "json":
		return JSON, nil
	case "off":
		return Off, nil
	}
	return Off, fmt.Errorf("accesslog: format %q: want combined, json or off", s)
}

func (f Format) String() string {
	switch f {
	case Combined:
		return "combined"
	case JSON:
		return "json"
	}
	return "off"
}

// Options configure a Logger.
type Options struct {
	// Writer receives the lines. A file opened with O_APPEND keeps lines
	// whole even when other processes write to it.
	Writer io.Writer
	// Format is the line format; Off makes Middleware a no-op.
	Format Format
	// ErrorLog receives one line when writing fails, and one when it
	// works again; nil means slog.Default().
	ErrorLog *slog.Logger
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Logger writes access log lines.
type Logger struct {
	o Options

	mu      sync.Mutex
	failing bool // the last write failed
}

// New returns a Logger writing to o.Writer.
func New(o Options) *Logger {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ErrorLog == nil {
		o.ErrorLog = slog.Default()
	}
	if o.Writer == nil {
		o.Format = Off
	}
	return &Logger{o: o}
}

// entry is what one line says.
type entry struct {
	start        time.Time
	duration     time.Duration
	remote, user string
	method, uri  string
	proto, host  string
	referer, ua  string
	status       int
	sent, recv   int64
	listener     string
	protocol     string
	backend      string
	instance     string
	upstream     time.Duration
}

// Middleware logs every request next serves on listener. backendOf names
// the backend when the Record in the request context was not given one;
// it may be nil.
func (l *Logger) Middleware(listener, protocol string, backendOf func(*http.Request) string, next http.Handler) http.Handler {
	if l == nil || l.o.Format == Off {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := l.o.Now()
		rec := FromContext(r.Context())
		if rec == nil {
			rec = &Record{}
			r = r.WithContext(NewContext(r.Context(), rec))
		}
		rw := &httpcount.ResponseWriter{ResponseWriter: w}
		var body *httpcount.Body
		if r.Body != nil && r.Body != http.NoBody {
			body = &httpcount.Body{ReadCloser: r.Body}
			r.Body = body
		}
		next.ServeHTTP(rw, r)

		e := entry{
			start: start, duration: l.o.Now().Sub(start),
			remote: remoteHost(r.RemoteAddr), user: remoteUser(r, rec),
			method: r.Method, uri: r.RequestURI, proto: r.Proto, host: r.Host,
			referer: r.Referer(), ua: r.UserAgent(),
			status: rw.Code, sent: rw.Bytes,
			listener: listener, protocol: protocol,
			backend: rec.Backend(), instance: rec.Instance(), upstream: rec.UpstreamTime(),
		}
		if e.uri == "" && r.URL != nil {
			e.uri = r.URL.RequestURI()
		}
		if e.status == 0 {
			e.status = http.StatusOK
		}
		if body != nil {
			e.recv = body.Bytes
		}
		if e.backend == "" && backendOf != nil {
			e.backend = backendOf(r)
		}
		l.write(e)
	})
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (l *Logger) write(e entry) {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	defer bufPool.Put(b)
	if l.o.Format == JSON {
		appendJSON(b, e)
	} else {
		appendCombined(b, e)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.o.Writer.Write(b.Bytes())
	switch {
	case err != nil && !l.failing:
		l.failing = true
		l.o.ErrorLog.Error("accesslog: write failed; dropping lines until it works again", "err", err)
	case err == nil && l.failing:
		l.failing = false
		l.o.ErrorLog.Info("accesslog: writing again")
	}
}

func remoteHost(addr string) string {
	if addr == "" {
		return "-"
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// remoteUser is the user the backend was told of: a route's authorizer's
// REMOTE_USER (reported to rec), else REMOTE_USER from the front server
// (it authenticated the client); when that is empty, the Basic auth user
// name, else "". r is the request as the front end decoded it: the
// authorizer's variables are on the request the backend got, not on r.
// vars.Lookup reads the one variable: an AJP request's variables are not
// all rendered for it.
func remoteUser(r *http.Request, rec *Record) string {
	u, ok := rec.User()
	if !ok {
		u, _ = vars.Lookup(r.Context(), "REMOTE_USER")
	}
	if u != "" {
		return u
	}
	if u, _, ok := r.BasicAuth(); ok {
		return u
	}
	return ""
}

func appendCombined(b *bytes.Buffer, e entry) {
	b.WriteString(e.remote)
	b.WriteString(" - ")
	writeDash(b, e.user, false)
	b.WriteString(" [")
	b.WriteString(e.start.Format("02/Jan/2006:15:04:05 -0700"))
	b.WriteString("] \"")
	writeEscaped(b, e.method)
	b.WriteByte(' ')
	writeEscaped(b, e.uri)
	b.WriteByte(' ')
	writeEscaped(b, e.proto)
	b.WriteString("\" ")
	b.WriteString(strconv.Itoa(e.status))
	b.WriteByte(' ')
	if e.sent == 0 {
		b.WriteByte('-')
	} else {
		b.WriteString(strconv.FormatInt(e.sent, 10))
	}
	b.WriteByte(' ')
	writeDash(b, e.referer, true)
	b.WriteByte(' ')
	writeDash(b, e.ua, true)
	for _, kv := range [...][2]string{{"listener", e.listener}, {"protocol", e.protocol}, {"backend", e.backend}, {"instance", e.instance}} {
		b.WriteByte(' ')
		b.WriteString(kv[0])
		b.WriteString(`="`)
		writeEscaped(b, kv[1])
		b.WriteByte('"')
	}
	b.WriteString(" upstream_time=")
	if e.upstream > 0 {
		b.WriteString(seconds(e.upstream))
	} else {
		b.WriteByte('-')
	}
	b.WriteString(" duration=")
	b.WriteString(seconds(e.duration))
	b.WriteByte('\n')
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// writeDash writes s, or "-" when empty, quoted if asked.
func writeDash(b *bytes.Buffer, s string, quoted bool) {
	if quoted {
		b.WriteByte('"')
	}
	switch {
	case s == "":
		b.WriteByte('-')
	case quoted:
		writeEscaped(b, s)
	default:
		// An unquoted field (the user name) must not contain the spaces
		// that separate fields, or a name could forge the ones after it.
		writeEscapedSpace(b, s, true)
	}
	if quoted {
		b.WriteByte('"')
	}
}

func writeEscaped(b *bytes.Buffer, s string) { writeEscapedSpace(b, s, false) }

// writeEscapedSpace writes s with control bytes, non-ASCII, quotes and
// backslashes (and spaces, when space is set) as \xHH.
func writeEscapedSpace(b *bytes.Buffer, s string, space bool) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || space && c == ' ' {
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
}

// jsonLine is the JSON format's line. Times are RFC 3339, durations
// seconds.
type jsonLine struct {
	Time          string  `json:"time"`
	RemoteAddr    string  `json:"remote_addr"`
	RemoteUser    string  `json:"remote_user,omitempty"`
	Method        string  `json:"method"`
	URI           string  `json:"uri"`
	Proto         string  `json:"proto"`
	Host          string  `json:"host,omitempty"`
	Status        int     `json:"status"`
	BytesSent     int64   `json:"bytes_sent"`
	BytesReceived int64   `json:"bytes_received"`
	Referer       string  `json:"referer,omitempty"`
	UserAgent     string  `json:"user_agent,omitempty"`
	Listener      string  `json:"listener"`
	Protocol      string  `json:"protocol"`
	Backend       string  `json:"backend,omitempty"`
	Instance      string  `json:"instance,omitempty"`
	UpstreamTime  float64 `json:"upstream_time,omitempty"`
	Duration      float64 `json:"duration"`
}

func appendJSON(b *bytes.Buffer, e entry) {
	enc := json.NewEncoder(b) // Encode ends the line with '\n'
	// Encoding a struct of strings and numbers cannot fail; invalid UTF-8
	// is replaced, not refused.
	enc.Encode(jsonLine{ //nolint:errcheck // see above
		Time: e.start.Format(time.RFC3339Nano), RemoteAddr: e.remote, RemoteUser: e.user,
		Method: e.method, URI: e.uri, Proto: e.proto, Host: e.host,
		Status: e.status, BytesSent: e.sent, BytesReceived: e.recv,
		Referer: e.referer, UserAgent: e.ua,
		Listener: e.listener, Protocol: e.protocol, Backend: e.backend, Instance: e.instance,
		UpstreamTime: e.upstream.Seconds(), Duration: e.duration.Seconds(),
	})
}
