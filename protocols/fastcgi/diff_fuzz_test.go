package fastcgi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/fcgi"
	"net/textproto"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/junction-gw/junction/vars"
)

// FuzzDifferential serves one RESPONDER request, the same bytes on the
// wire, with junction's codec and with the standard library's
// net/http/fcgi, each over its own in-memory connection, and compares what
// a handler sees. The stream is always well framed (BEGIN_REQUEST, PARAMS
// cut into records of pchunk bytes, the empty PARAMS record, STDIN cut into
// records of schunk bytes, the empty STDIN record), so the fuzzer spends
// its time on what the two codecs can disagree about: the name-value
// pairs and the body. Framing has its own targets (FuzzRecordReader,
// FuzzServeConn).
//
// Either both refuse the request (the handler never runs) or both run it
// and the handler sees the same:
//   - method, protocol version, Content-Length;
//   - URL path and query;
//   - Host;
//   - headers: every header whose name is an RFC 9110 token, by name and
//     values;
//   - remote address;
//   - whether the request counts as TLS;
//   - the body bytes (junction's stop at CONTENT_LENGTH, and a STDIN that
//     carries more fails the read of the last declared byte).
//
// junction's RequestURI, which net/http/cgi never sets, must be the
// REQUEST_URI sent. Where the two differ by design, diffNormalise says
// which side is right and why; every other difference fails the target.
//
// Seeds: the requests captured from nginx, lighttpd, Apache mod_proxy_fcgi
// and cgi-fcgi (testdata/fuzz/FuzzRecordReader, see capture_test.go), cut
// into their PARAMS and STDIN streams.
func FuzzDifferential(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzRecordReader", "*"))
	for _, s := range seeds {
		b, err := readSeed(s)
		if err != nil {
			f.Fatalf("%s: %v", s, err)
		}
		params, stdin, pchunk, keep, ok := splitCapture(b)
		if ok {
			f.Add(params, stdin, pchunk, uint16(max(1, len(stdin))), keep)
		}
	}
	f.Add(nv("REQUEST_METHOD", "POST", "REQUEST_URI", "/a%20b?x=1", "SERVER_PROTOCOL", "HTTP/1.1",
		"CONTENT_LENGTH", "5", "HTTP_HOST", "h", "HTTP_X_A", "1", "REMOTE_ADDR", "192.0.2.1", "REMOTE_PORT", "8080",
		"HTTPS", "on", "CONTENT_TYPE", "text/plain"), []byte("hello"), uint16(7), uint16(2), false)
	f.Add(nv("REQUEST_METHOD", "GET", "SCRIPT_NAME", "/s.cgi", "PATH_INFO", "/p", "QUERY_STRING", "q",
		"SERVER_PROTOCOL", "HTTP/1.0"), []byte{}, uint16(0), uint16(0), true)
	f.Fuzz(func(t *testing.T, params, stdin []byte, pchunk, schunk uint16, keep bool) {
		var ours, theirs requestView
		serveBoth(t, params, stdin, pchunk, schunk, keep, &ours, &theirs)
		compareDiff(t, params, stdin, &ours, &theirs)
	})
}

// serveBoth builds the request's stream and serves it with junction (ours)
// and with net/http/fcgi (theirs).
func serveBoth(t *testing.T, params, stdin []byte, pchunk, schunk uint16, keep bool, ours, theirs *requestView) {
	var flags byte
	if keep {
		flags = flagKeepConn
	}
	stream := cat(begin(1, roleResponder, flags), chunkedRecs(typeParams, params, int(pchunk)), chunkedRecs(typeStdin, stdin, int(schunk)))
	synctest.Test(t, func(t *testing.T) {
		s := &Server{Handler: ours.handler(), Logger: slog.New(slog.DiscardHandler)}
		serveDiff(stream, func(c net.Conn) { s.ServeConn(context.Background(), c) })
	})
	synctest.Test(t, func(t *testing.T) {
		serveDiff(stream, func(c net.Conn) { fcgi.Serve(newOneConnListener(c), theirs.handler()) })
	})
}

// chunkedRecs cuts content into records of at most chunk bytes (0: as few
// as possible) and ends the stream with an empty record.
func chunkedRecs(typ recType, content []byte, chunk int) []byte {
	if chunk <= 0 {
		chunk = maxContentLen
	}
	var out []byte
	for len(content) > 0 {
		n := min(chunk, len(content))
		out = append(out, rec(typ, 1, content[:n])...)
		content = content[n:]
	}
	return append(out, rec(typ, 1, nil)...)
}

// splitCapture takes apart a captured request: its PARAMS and STDIN
// content, the size of its first PARAMS record and its KEEP_CONN flag.
func splitCapture(b []byte) (params, stdin []byte, pchunk uint16, keep, ok bool) {
	recs, err := decodeAll(b)
	if err != nil || len(recs) == 0 || recs[0].Type != typeBeginRequest || len(recs[0].content) != 8 {
		return nil, nil, 0, false, false
	}
	keep = recs[0].content[2]&flagKeepConn != 0
	params, stdin = []byte{}, []byte{}
	for _, r := range recs {
		switch r.Type {
		case typeParams:
			if pchunk == 0 {
				pchunk = r.ContentLength
			}
			params = append(params, r.content...)
		case typeStdin:
			stdin = append(stdin, r.content...)
		}
	}
	return params, stdin, pchunk, keep, true
}

// serveDiff serves stream on one end of a pipe with serve and reads the
// replies until END_REQUEST or the end of the connection.
func serveDiff(stream []byte, serve func(net.Conn)) {
	cli, srv := net.Pipe()
	done := make(chan struct{})
	go func() { defer close(done); serve(srv) }()
	go cli.Write(stream) // fails once the server closes
	readTranscript(cli, endedCount(1))
	cli.Close()
	<-done
}

// oneConnListener hands out one connection, then blocks until closed:
// what fcgi.Serve needs to serve a single in-memory connection.
type oneConnListener struct {
	c      chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newOneConnListener(c net.Conn) *oneConnListener {
	l := &oneConnListener{c: make(chan net.Conn, 1), closed: make(chan struct{})}
	l.c <- &closeNotifier{Conn: c, l: l}
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "unix"} }

// closeNotifier closes its listener with the connection, so that fcgi.Serve
// returns once net/http/fcgi is done with the connection.
type closeNotifier struct {
	net.Conn
	l *oneConnListener
}

func (c *closeNotifier) Close() error {
	c.l.Close()
	return c.Conn.Close()
}

// requestView is what the handler saw of the request.
type requestView struct {
	ran            bool
	method         string
	url            *url.URL
	requestURI     string
	major, minor   int
	host           string
	header         http.Header
	remoteAddr     string
	tls            bool
	contentLength  int64
	body           []byte
	readErr        error
	contextHasVars bool
}

func (v *requestView) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*v = requestView{ran: true, method: r.Method, url: r.URL, requestURI: r.RequestURI,
			major: r.ProtoMajor, minor: r.ProtoMinor, host: r.Host, header: r.Header.Clone(),
			remoteAddr: r.RemoteAddr, tls: r.TLS != nil, contentLength: r.ContentLength,
			contextHasVars: vars.FromContext(r.Context()) != nil}
		v.body, v.readErr = io.ReadAll(r.Body)
		io.WriteString(w, "ok")
	})
}

// diffEnv is the request's variables as both codecs apply them: decoded
// name-value pairs, the last of a repeated name winning (junction's
// vars.LastWins for CGI names; net/http/fcgi's map for every name).
type diffEnv struct {
	pairs vars.Vars
	last  map[string]string
	count map[string]int
}

func newDiffEnv(pairs vars.Vars) diffEnv {
	e := diffEnv{pairs: pairs, last: map[string]string{}, count: map[string]int{}}
	for _, kv := range pairs {
		e.last[kv.Name] = kv.Value
		e.count[kv.Name]++
	}
	return e
}

// requestURI is the request target junction builds (vars.Request):
// REQUEST_URI, else the escaped SCRIPT_NAME and PATH_INFO and the query.
func (e diffEnv) requestURI() string {
	if uri := e.last["REQUEST_URI"]; uri != "" {
		return uri
	}
	uri := (&url.URL{Path: e.last["SCRIPT_NAME"] + e.last["PATH_INFO"]}).EscapedPath()
	if q := e.last["QUERY_STRING"]; q != "" {
		uri += "?" + q
	}
	return uri
}

func compareDiff(t *testing.T, params, stdin []byte, ours, theirs *requestView) {
	pairs, err := parseNameValues(params)
	if err != nil || len(params) > DefaultMaxHeaderBytes {
		// Malformed pairs close junction's connection; PARAMS beyond
		// MaxHeaderBytes are answered 431. net/http/fcgi serves the pairs
		// before the damage and has no limit: its leniency, not compared.
		if ours.ran {
			t.Fatalf("junction served PARAMS it must refuse (%v, %d bytes)", err, len(params))
		}
		return
	}
	e := newDiffEnv(pairs)
	switch {
	case !ours.ran && !theirs.ran:
		return
	case ours.ran && !theirs.ran:
		if why := theirRefusal(e); why != "" {
			return
		}
		t.Fatalf("junction served a request net/http/fcgi refuses, for no known reason: %s", describe(e))
	case !ours.ran && theirs.ran:
		if why := ourRefusal(e); why != "" {
			return
		}
		t.Fatalf("junction refused a request net/http/fcgi serves, for no known reason: %s", describe(e))
	}

	if ours.method != theirs.method {
		t.Fatalf("method %q, net/http/fcgi %q", ours.method, theirs.method)
	}
	if ours.major != theirs.major || ours.minor != theirs.minor {
		t.Fatalf("HTTP/%d.%d, net/http/fcgi HTTP/%d.%d", ours.major, ours.minor, theirs.major, theirs.minor)
	}
	if ours.contentLength != theirs.contentLength {
		t.Fatalf("Content-Length %d, net/http/fcgi %d", ours.contentLength, theirs.contentLength)
	}
	if uri := e.requestURI(); ours.requestURI != uri {
		t.Fatalf("RequestURI %q, the variables say %q", ours.requestURI, uri)
	}
	if !ours.contextHasVars {
		t.Fatalf("the request context carries no variables")
	}
	if comparableURL(e) && (ours.url.Path != theirs.url.Path || ours.url.RawQuery != theirs.url.RawQuery) {
		t.Fatalf("URL path %q query %q, net/http/fcgi %q %q", ours.url.Path, ours.url.RawQuery, theirs.url.Path, theirs.url.RawQuery)
	}
	// Host: only from one, non-empty HTTP_HOST. Without one junction falls
	// back to SERVER_NAME[:SERVER_PORT] as net/http's server would have
	// the Host a client must send; net/http/cgi leaves Host empty. A
	// repeated HTTP_HOST is a request nginx and Apache refuse (RFC 9112
	// 3.2) and never send: junction keeps the first, net/http/fcgi's map the
	// last.
	if e.count["HTTP_HOST"] == 1 && e.last["HTTP_HOST"] != "" && ours.host != theirs.host {
		t.Fatalf("Host %q, net/http/fcgi %q", ours.host, theirs.host)
	}
	compareHeaders(t, e, ours.header, theirs.header)
	// RemoteAddr: without REMOTE_ADDR junction leaves it empty, where
	// net/http/cgi makes ":0" of nothing. A REMOTE_PORT that is not plain
	// decimal is passed through by junction and turned into a number (0
	// when it is not one) by net/http/cgi's strconv.Atoi.
	if p := e.last["REMOTE_PORT"]; e.last["REMOTE_ADDR"] != "" && (p == "" || plainDecimal(p)) && ours.remoteAddr != theirs.remoteAddr {
		t.Fatalf("RemoteAddr %q, net/http/fcgi %q", ours.remoteAddr, theirs.remoteAddr)
	}
	// HTTPS: junction takes any case of "on" (Apache sends "on", some
	// configurations "ON"); net/http/cgi only "on", "ON" and "1".
	if h := e.last["HTTPS"]; (!strings.EqualFold(h, "on") || h == "on" || h == "ON") && ours.tls != theirs.tls {
		t.Fatalf("TLS %v, net/http/fcgi %v (HTTPS=%q)", ours.tls, theirs.tls, h)
	}
	compareBody(t, stdin, ours, theirs)
}

// theirRefusal says why net/http/fcgi may refuse a request junction
// serves, or "" when no documented reason applies.
func theirRefusal(e diffEnv) string {
	if p := e.last["SERVER_PROTOCOL"]; p != "INCLUDED" {
		if _, _, ok := http.ParseHTTPVersion(p); !ok {
			// net/http/cgi requires SERVER_PROTOCOL (RFC 3875 4.1.16);
			// junction serves a request without a usable one as
			// HTTP/1.0, the version that needs nothing of the client.
			return "SERVER_PROTOCOL"
		}
	}
	if e.last["REQUEST_URI"] == "" && strings.ContainsFunc(e.last["SCRIPT_NAME"]+e.last["PATH_INFO"], isCTL) {
		// Without REQUEST_URI, junction escapes the decoded SCRIPT_NAME
		// and PATH_INFO (RFC 3875 4.1.13, 4.1.5) into a request target;
		// net/http/cgi hands the raw text to url.Parse, which refuses
		// control characters.
		return "control character in SCRIPT_NAME or PATH_INFO"
	}
	if host := e.last["HTTP_HOST"]; host != "" {
		scheme := "http://"
		if h := e.last["HTTPS"]; h == "on" || h == "ON" || h == "1" {
			scheme = "https://"
		}
		if _, err := url.Parse(scheme + host + e.requestURI()); err != nil {
			// net/http/cgi refuses a Host that does not parse into a URL
			// with the target (a bad port, a bad escape); junction, like
			// net/http's server, does not make the Host part of the URL.
			return "HTTP_HOST and target do not parse as a URL"
		}
	}
	if uri := e.requestURI(); strings.HasPrefix(uri, "//") && e.last["HTTP_HOST"] == "" {
		// net/http/cgi parses a request target with url.Parse, for which
		// "//x/..." names a host x (and a bad port there fails it);
		// junction, like net/http's server, reads it as a path.
		return "path starting with //"
	}
	return ""
}

// ourRefusal says why junction may refuse a request net/http/fcgi serves,
// or "" when no documented reason applies.
func ourRefusal(e diffEnv) string {
	if cl := e.last["CONTENT_LENGTH"]; cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n < 0 {
			// net/http/cgi takes a negative CONTENT_LENGTH as given.
			return "negative CONTENT_LENGTH"
		}
	}
	if _, err := vars.ParseRequestURI(e.requestURI()); err != nil {
		// junction parses the request target as net/http's server does
		// (url.ParseRequestURI: an absolute path, "*" or an absolute
		// URI); net/http/cgi uses url.Parse, which also takes relative
		// and empty references and splits off a "#fragment".
		return "request target"
	}
	if !vars.ValidToken(e.last["REQUEST_METHOD"]) {
		// vars.Validate's rule: a method is an RFC 9110 token, as
		// net/http's server requires; net/http/cgi takes any text.
		return "method"
	}
	for _, kv := range e.pairs {
		if err := vars.CheckVar(kv.Name, kv.Value); err != nil {
			// vars.Validate's rule: an HTTP_* name must make a header
			// name that is a token, and no value may hold CR, LF or NUL
			// (it could split a head or an environment entry downstream);
			// net/http/cgi takes either.
			return "variable"
		}
	}
	return ""
}

// comparableURL reports whether net/http/cgi's URL can be compared with
// junction's. net/http/cgi parses "http://" + HTTP_HOST + target with
// url.Parse: a Host holding '/', '?' or '#' moves the path and query, a
// target holding '#' loses its fragment, and one not starting with a
// single '/' is read as a relative reference or a host. Without
// REQUEST_URI it joins SCRIPT_NAME and PATH_INFO unescaped, so a '%', '?'
// or '#' in them reads as an escape, a query or a fragment, where junction
// escapes the decoded path (RFC 3875) first.
func comparableURL(e diffEnv) bool {
	if strings.ContainsAny(e.last["HTTP_HOST"], "/?#") {
		return false
	}
	uri := e.requestURI()
	if strings.Contains(uri, "#") || !strings.HasPrefix(uri, "/") || strings.HasPrefix(uri, "//") {
		return false
	}
	if e.last["REQUEST_URI"] == "" && strings.ContainsAny(e.last["SCRIPT_NAME"]+e.last["PATH_INFO"], "%?#") {
		return false
	}
	return true
}

// compareHeaders compares the header fields with token names that come
// from exactly one variable. Names that are not tokens cannot be HTTP
// fields and each codec spells them its own way; a repeated header (two
// HTTP_X, or HTTP_X and HTTP_x, which name the same field) keeps every
// value in junction, as nginx repeats a variable for a repeated field and
// the fields are one list (RFC 9110 5.3), where net/http/fcgi's map keeps
// the last. Content-Type comes from CONTENT_TYPE and from HTTP_CONTENT_TYPE
// (nginx sends both): both codecs put CONTENT_TYPE first, junction alone
// drops the copy.
func compareHeaders(t *testing.T, e diffEnv, ours, theirs http.Header) {
	t.Helper()
	sources := map[string]int{}
	for _, kv := range e.pairs {
		name, ok := strings.CutPrefix(kv.Name, "HTTP_")
		if !ok || name == "" || name == "HOST" {
			continue
		}
		key := strings.ReplaceAll(name, "_", "-")
		if tokenName(key) {
			sources[textproto.CanonicalMIMEHeaderKey(key)]++
		}
	}
	if e.last["CONTENT_TYPE"] != "" {
		sources["Content-Type"]++
	}
	for key, n := range sources {
		switch {
		case key == "Content-Type":
			if ours.Get(key) != theirs.Get(key) {
				t.Fatalf("Content-Type %q, net/http/fcgi %q", ours.Get(key), theirs.Get(key))
			}
		case n == 1:
			if o, th := ours.Values(key), theirs.Values(key); !slices.Equal(o, th) {
				t.Fatalf("header %s = %q, net/http/fcgi %q", key, o, th)
			}
		}
	}
	for _, h := range []http.Header{ours, theirs} {
		for key := range h {
			if tokenName(key) && sources[key] == 0 {
				t.Fatalf("header %s from no variable (junction %q, net/http/fcgi %q)", key, ours[key], theirs[key])
			}
		}
	}
}

// compareBody compares the bodies. When CONTENT_LENGTH announces a body,
// net/http/fcgi hands the handler every STDIN byte; junction hands over
// the announced bytes, as net/http's server and net/http/cgi's child do,
// and then fails the read of a body that is shorter (io.ErrUnexpectedEOF)
// or longer than announced: a front server never sends either, and a
// backend relaying the body with its Content-Length would fail on it
// later. Without CONTENT_LENGTH (or with 0) there is no body (RFC 3875
// 4.1.2): junction gives http.NoBody, net/http/fcgi the STDIN stream with
// a ContentLength of 0.
func compareBody(t *testing.T, stdin []byte, ours, theirs *requestView) {
	t.Helper()
	if theirs.readErr != nil || !bytes.Equal(theirs.body, stdin) {
		t.Fatalf("net/http/fcgi body %q (%v), STDIN %q", theirs.body, theirs.readErr, stdin)
	}
	if ours.contentLength == 0 {
		if len(ours.body) != 0 || ours.readErr != nil {
			t.Fatalf("junction read %q (%v) from a request without a body", ours.body, ours.readErr)
		}
		return
	}
	want := stdin[:min(int64(len(stdin)), ours.contentLength)]
	if int64(len(stdin)) > ours.contentLength {
		// A body that carries more than CONTENT_LENGTH never reads as
		// complete: its last declared byte gives way to the error, so
		// that a reader taking exactly CONTENT_LENGTH bytes sees it too.
		want = want[:len(want)-1]
	}
	if !bytes.Equal(ours.body, want) {
		t.Fatalf("body %q, want the %d bytes %q of STDIN %q", ours.body, ours.contentLength, want, stdin)
	}
	switch n := int64(len(stdin)); {
	case n == ours.contentLength && ours.readErr != nil:
		t.Fatalf("%d-byte body: read error %v", n, ours.readErr)
	case n < ours.contentLength && !errors.Is(ours.readErr, io.ErrUnexpectedEOF):
		t.Fatalf("%d of %d body bytes: read error %v, want io.ErrUnexpectedEOF", n, ours.contentLength, ours.readErr)
	case n > ours.contentLength && ours.readErr == nil:
		t.Fatalf("%d body bytes for a Content-Length of %d: no read error", n, ours.contentLength)
	}
}

// plainDecimal reports whether s is what strconv.Itoa makes of its value.
func plainDecimal(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && strconv.Itoa(n) == s
}

// tokenName reports whether s is an RFC 9110 token, the form of a field
// name.
func tokenName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func isCTL(r rune) bool { return r < ' ' || r == 0x7f }

func describe(e diffEnv) string {
	var b strings.Builder
	for _, kv := range e.pairs {
		b.WriteString(strconv.Quote(kv.Name) + "=" + strconv.Quote(kv.Value) + " ")
	}
	return b.String()
}
