package ajp13

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/junction-gw/junction/vars"
)

var testLimits = decodeLimits{maxHeaderBytes: DefaultMaxHeaderBytes, maxHeaders: maxHeaders}

func decodePacket(t testing.TB, pkt []byte, lim decodeLimits) (*forwardRequest, error) {
	t.Helper()
	buf := make([]byte, MaxPacketSize)
	p, err := readPacket(bytes.NewReader(pkt), buf)
	if err != nil {
		return nil, err
	}
	return decodeForwardRequest(p, lim)
}

func TestDecodeForwardRequestEveryAttribute(t *testing.T) {
	attrs := []attribute{
		strAttr(attrContext, "/ctx"),
		strAttr(attrServletPath, "/servlet"),
		strAttr(attrRemoteUser, "alice"),
		strAttr(attrAuthType, "Basic"),
		strAttr(attrQueryString, "a=1&b=%2F"),
		strAttr(attrRoute, "b"),
		strAttr(attrSSLCert, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"),
		strAttr(attrSSLCipher, "TLS_AES_128_GCM_SHA256"),
		strAttr(attrSSLSession, "0123abcd"),
		reqAttr("AJP_REMOTE_PORT", "51234"),
		{code: attrSSLKeySize, keySize: 128},
		strAttr(attrSecret, "s3cr3t"),
		reqAttr("AJP_LOCAL_ADDR", "127.0.0.1"),
	}
	pkt := fwd(t, 2, "/a%20b/c", []string{"Host", "www.example.test", "X-Custom", "v", "Accept", "*/*"}, attrs...)
	f, err := decodePacket(t, pkt, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if f.method != "GET" || f.uri != "/a%20b/c" || f.protocol != "HTTP/1.1" || f.serverPort != 443 || f.remoteHost != "" {
		t.Errorf("fixed fields: %+v", f)
	}
	wantHeaders := []header{{0xA00B, "Host", "www.example.test"}, {0, "X-Custom", "v"}, {0xA001, "Accept", "*/*"}}
	if !reflect.DeepEqual(f.headers, wantHeaders) {
		t.Errorf("headers = %+v, want %+v", f.headers, wantHeaders)
	}
	if !reflect.DeepEqual(f.attrs, attrs) {
		t.Errorf("attrs = %+v\nwant %+v", f.attrs, attrs)
	}
}

func TestDecodeMethods(t *testing.T) {
	for code := 1; code < len(methods); code++ {
		f, err := decodePacket(t, fwd(t, byte(code), "/", nil), testLimits)
		if err != nil {
			t.Fatalf("code %d: %v", code, err)
		}
		if f.method != methods[code] || f.method == "" {
			t.Errorf("code %d: method %q", code, f.method)
		}
	}
	f, err := decodePacket(t, fwd(t, 0xFF, "/", nil, strAttr(attrStoredMethod, "FROBNICATE")), testLimits)
	if err != nil || f.method != "FROBNICATE" {
		t.Errorf("stored_method: %v %+v", err, f)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := fwd(t, 2, "/", []string{"Host", "h"})
	// truncate cuts the payload and fixes the length, to test the string
	// and field readers rather than the framing.
	truncate := func(p []byte, n int) []byte {
		q := append([]byte(nil), p[:n]...)
		q[2], q[3] = byte((n-4)>>8), byte(n-4)
		return q
	}
	withByte := func(p []byte, i int, b byte) []byte {
		q := append([]byte(nil), p...)
		q[i] = b
		return q
	}
	// Offset of the NUL after "HTTP/1.1": 4 header + type + method + 2 length + 8.
	protoNUL := 4 + 1 + 1 + 2 + 8
	many := make([]string, 0, 2*(maxHeaders+1))
	for i := 0; i <= maxHeaders; i++ {
		many = append(many, "Accept", "x")
	}
	tests := []struct {
		name string
		pkt  []byte
		lim  decodeLimits
		want error
	}{
		{"bad magic", withByte(good, 0, 0x13), testLimits, ErrMalformed},
		{"oversize length", []byte{0x12, 0x34, 0xFF, 0xFF, 2}, testLimits, ErrTooLarge},
		{"truncated payload", good[:len(good)-3], testLimits, io.ErrUnexpectedEOF},
		{"truncated string", truncate(good, protoNUL-2), testLimits, ErrMalformed},
		{"missing NUL", withByte(good, protoNUL, 'x'), testLimits, ErrMalformed},
		{"no terminator", truncate(good, len(good)-1), testLimits, ErrMalformed},
		{"trailing bytes", func() []byte { q := append(append([]byte(nil), good...), 0); q[3]++; return q }(), testLimits, ErrMalformed},
		{"not forward request", rawPacket(9), testLimits, ErrMalformed},
		{"method code 0", fwd(t, 0, "/", nil), testLimits, ErrMalformed},
		{"method code 28", fwd(t, 28, "/", nil), testLimits, ErrMalformed},
		{"0xFF without stored_method", fwd(t, 0xFF, "/", nil), testLimits, ErrMalformed},
		{"attribute code 0", fwd(t, 2, "/", nil, attribute{}), testLimits, ErrMalformed},
		{"header code 0xA00F", func() []byte {
			f := &forwardRequest{methodCode: 2, protocol: "HTTP/1.1", uri: "/", headers: []header{{code: 0xA00F, value: "x"}}}
			p, _ := encodeForwardRequest(f, MaxPacketSize)
			return p
		}(), testLimits, ErrMalformed},
		{"repeated secret", fwd(t, 2, "/", nil, strAttr(attrSecret, "a"), strAttr(attrSecret, "b")), testLimits, ErrMalformed},
		{"empty uri", fwd(t, 2, "", nil), testLimits, ErrMalformed},
		{"too many headers", fwd(t, 2, "/", many), testLimits, ErrTooLarge},
		{"header bytes", fwd(t, 2, "/", []string{"X-Big", strings.Repeat("v", 100)}), decodeLimits{maxHeaderBytes: 50, maxHeaders: 10}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodePacket(t, tt.pkt, tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "ajp13: ") && tt.want != io.ErrUnexpectedEOF {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestUnknownAttributeCode(t *testing.T) {
	// Attribute code 0x0E does not exist: its length is unknowable.
	p := fwd(t, 2, "/", nil)
	p = append(p[:len(p)-1], 0x0E, 0, 1, 'x', 0, 0xFF)
	p[2], p[3] = byte((len(p)-4)>>8), byte(len(p)-4)
	if _, err := decodePacket(t, p, testLimits); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}

func TestRequestVars(t *testing.T) {
	pkt := fwd(t, 4, "/cgi-bin/x%2520y.cgi/extra", []string{
		"Host", "www.example.test", "Content-Type", "text/plain", "Content-Length", "5",
		"X-Forwarded-For", "198.51.100.1", "Proxy", "http://evil/", "X_Under", "u",
	},
		strAttr(attrRemoteUser, "alice"), strAttr(attrAuthType, "Basic"), strAttr(attrQueryString, "q=%20"),
		strAttr(attrRoute, "b"), strAttr(attrSSLCert, "CERT"), strAttr(attrSSLCipher, "AES"),
		strAttr(attrSSLSession, "sess"), attribute{code: attrSSLKeySize, keySize: 256},
		reqAttr("AJP_REMOTE_PORT", "40000"), reqAttr("AJP_LOCAL_ADDR", "10.0.0.1"),
		reqAttr("javax.servlet.include.request_uri", "/"), reqAttr("javax.servlet.include.path_info", "WEB-INF/web.xml"),
		reqAttr("javax.servlet.include.servlet_path", "/"), reqAttr("SCRIPT_FILENAME", "/etc/passwd"),
		reqAttr("DOCUMENT_ROOT", "/"), reqAttr("PATH_INFO", "/x"), reqAttr("REMOTE_USER", "root"),
		strAttr(attrServletPath, "/evil"), strAttr(attrContext, "/evil"),
	)
	f, err := decodePacket(t, pkt, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	f.isSSL = true
	v := renderVars(f, "node-a")
	want := map[string]string{
		"REQUEST_METHOD": "POST", "SERVER_PROTOCOL": "HTTP/1.1",
		"REQUEST_URI": "/cgi-bin/x%2520y.cgi/extra?q=%20", "QUERY_STRING": "q=%20",
		"REMOTE_ADDR": "192.0.2.7", "REMOTE_PORT": "40000", "SERVER_NAME": "www.example.test",
		"SERVER_PORT": "443", "SERVER_ADDR": "10.0.0.1", "HTTPS": "on", "REMOTE_USER": "alice",
		"AUTH_TYPE": "Basic", "SSL_CLIENT_CERT": "CERT", "SSL_CIPHER": "AES", "SSL_SESSION_ID": "sess",
		"SSL_CIPHER_USEKEYSIZE": "256", "JUNCTION_ROUTE": "node-a", "AJP_SESSION_ROUTE": "b",
		"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "5",
	}
	got := map[string]string{}
	for _, kv := range v {
		got[kv.Name] = kv.Value
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("vars:\n got %v\nwant %v", got, want)
	}
	if err := v.Check(); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"SCRIPT_FILENAME", "SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED", "DOCUMENT_ROOT", "HTTP_PROXY"} {
		if _, ok := v.Lookup(bad); ok {
			t.Errorf("%s must not be set from AJP input", bad)
		}
	}
	// Headers are r.Header's: backends make HTTP_* from it.
	for _, kv := range v {
		if strings.HasPrefix(kv.Name, "HTTP_") {
			t.Errorf("%s rendered", kv.Name)
		}
	}

	r, err := f.httpRequest(context.Background(), "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if r.URL.Path != "/cgi-bin/x%20y.cgi/extra" || r.URL.RawQuery != "q=%20" || r.RequestURI != "/cgi-bin/x%2520y.cgi/extra?q=%20" {
		t.Errorf("url: path %q raw query %q request uri %q", r.URL.Path, r.URL.RawQuery, r.RequestURI)
	}
	if r.Host != "www.example.test" || r.RemoteAddr != "192.0.2.7:40000" || r.TLS == nil || r.ContentLength != 5 {
		t.Errorf("request: host %q remote %q tls %v length %d", r.Host, r.RemoteAddr, r.TLS != nil, r.ContentLength)
	}
	if r.Header.Get("X_under") != "u" || r.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("headers: %v", r.Header)
	}
	// Lookup gives what the full render gives, without making it.
	for _, name := range append(slices.Collect(maps.Keys(want)), "HTTP_HOST", "MISSING") {
		got, ok := vars.Lookup(r.Context(), name)
		w, wok := v.Lookup(name)
		if got != w || ok != wok {
			t.Errorf("Lookup(%s) = %q, %v; want %q, %v", name, got, ok, w, wok)
		}
	}
	if got := vars.FromContext(r.Context()); !reflect.DeepEqual(got, v) {
		t.Errorf("vars not in the request context")
	}
}

// renderVars renders f's variables as a backend's vars.FromContext does.
func renderVars(f *forwardRequest, route string) vars.Vars {
	return (&lazyVars{f: f, route: route, uri: f.requestURI()}).Vars()
}

// TestHTTPRequestRefuses: a well-framed request that breaks vars.Validate
// (or vars.CheckVar for a variable it renders) is a bad request (400).
func TestHTTPRequestRefuses(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
	}{
		{"header name not a token", fwd(t, 2, "/", []string{"Bad Name", "v"})},
		{"CR LF in header value", fwd(t, 2, "/", []string{"X-A", "v\r\nX-B: w"})},
		{"NUL in header value", fwd(t, 2, "/", []string{"X-A", "v\x00"})},
		{"stored_method not a token", fwd(t, 0xFF, "/", nil, strAttr(attrStoredMethod, "GET\r\nX: y"))},
		{"empty stored_method", fwd(t, 0xFF, "/", nil, strAttr(attrStoredMethod, ""))},
		{"CR LF in remote_user", fwd(t, 2, "/", nil, strAttr(attrRemoteUser, "a\r\nb"))},
		{"CR in ssl_cert", fwd(t, 2, "/", nil, strAttr(attrSSLCert, "-----BEGIN\r\n"))},
		{"LF in allow-listed req_attribute", fwd(t, 2, "/", nil, reqAttr("AJP_LOCAL_ADDR", "1\n2"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := decodePacket(t, tt.pkt, testLimits)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.httpRequest(context.Background(), "")
			var ie *vars.InvalidError
			if !errors.Is(err, errBadRequest) || !errors.As(err, &ie) {
				t.Fatalf("err = %v, want a bad request from vars", err)
			}
		})
	}
	// A PEM certificate keeps its line feeds; an attribute no variable
	// renders is not looked at.
	f, err := decodePacket(t, fwd(t, 2, "/", nil, strAttr(attrSSLCert, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		reqAttr("javax.servlet.x", "a\r\nb")), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.httpRequest(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := vars.Lookup(r.Context(), "SSL_CLIENT_CERT"); !strings.Contains(got, "\nMIIB\n") {
		t.Errorf("SSL_CLIENT_CERT = %q", got)
	}
}

func TestBodyLengthPolicy(t *testing.T) {
	tests := []struct {
		name    string
		hdrs    []string
		wantLen int64
		wantTE  []string
		bad     bool
	}{
		{"none", nil, 0, nil, false},
		{"content-length", []string{"Content-Length", "10"}, 10, nil, false},
		{"chunked", []string{"Transfer-Encoding", "chunked"}, -1, []string{"chunked"}, false},
		{"both", []string{"Transfer-Encoding", "chunked", "Content-Length", "3"}, 0, nil, true},
		{"gzip te", []string{"Transfer-Encoding", "gzip"}, 0, nil, true},
		{"negative", []string{"Content-Length", "-1"}, 0, nil, true},
		{"two lengths", []string{"Content-Length", "1", "Content-Length", "2"}, 0, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := decodePacket(t, fwd(t, 4, "/", tt.hdrs), testLimits)
			if err != nil {
				t.Fatal(err)
			}
			r, err := f.httpRequest(context.Background(), "")
			if tt.bad {
				if !errors.Is(err, errBadRequest) {
					t.Fatalf("err = %v, want bad request", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.ContentLength != tt.wantLen || !reflect.DeepEqual(r.TransferEncoding, tt.wantTE) || r.Header.Get("Transfer-Encoding") != "" {
				t.Errorf("length %d te %v header %v", r.ContentLength, r.TransferEncoding, r.Header)
			}
		})
	}
}

func TestRepeatedContentTypeRendersOnce(t *testing.T) {
	f, err := decodePacket(t, fwd(t, 4, "/", []string{"Content-Type", "a/b", "Content-Type", "c/d"}), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	v := renderVars(f, "")
	if err := v.Check(); err != nil || v.Get("CONTENT_TYPE") != "a/b" {
		t.Fatalf("vars %v: %v", v, err)
	}
}
