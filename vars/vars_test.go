package vars

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func pairs(nv ...string) Vars {
	v := make(Vars, 0, len(nv)/2)
	for i := 0; i+1 < len(nv); i += 2 {
		v = append(v, Var{Name: nv[i], Value: nv[i+1]})
	}
	return v
}

func TestLastWins(t *testing.T) {
	tests := []struct {
		name     string
		in, want Vars
		dropped  bool
	}{
		{"no repeats", pairs("A", "1", "HTTP_X", "a"), pairs("A", "1", "HTTP_X", "a"), false},
		{"HTTP_ repeats kept", pairs("HTTP_X", "a", "HTTP_X", "b"), pairs("HTTP_X", "a", "HTTP_X", "b"), false},
		{"fastcgi.conf plus own param", pairs("SCRIPT_FILENAME", "/a", "QUERY_STRING", "", "SCRIPT_FILENAME", "/b"),
			pairs("QUERY_STRING", "", "SCRIPT_FILENAME", "/b"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dropped := tt.in.LastWins()
			if !reflect.DeepEqual(got, tt.want) || dropped != tt.dropped {
				t.Errorf("got %q, %v; want %q, %v", got, dropped, tt.want, tt.dropped)
			}
		})
	}
}

func TestRequest(t *testing.T) {
	v := pairs("CONTENT_LENGTH", "3", "REQUEST_METHOD", "POST", "REQUEST_URI", "/a%20b?x=1",
		"SERVER_PROTOCOL", "HTTP/1.1", "HTTP_HOST", "h.example", "HTTP_COOKIE", "a=1", "HTTP_COOKIE", "b=2",
		"HTTP_X_MULTI", "1", "HTTP_X_MULTI", "2", "CONTENT_TYPE", "text/plain", "REMOTE_ADDR", "::1", "REMOTE_PORT", "9", "HTTPS", "on")
	r, err := Request(context.Background(), v, io.NopCloser(strings.NewReader("abc")))
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != "POST" || r.URL.Path != "/a b" || r.URL.RawQuery != "x=1" || r.RequestURI != "/a%20b?x=1" {
		t.Errorf("request line %s %q %q", r.Method, r.URL.Path, r.RequestURI)
	}
	if r.Host != "h.example" || r.ContentLength != 3 || r.ProtoMinor != 1 || r.TLS == nil || r.RemoteAddr != "[::1]:9" {
		t.Errorf("host %q len %d proto %s tls %v remote %q", r.Host, r.ContentLength, r.Proto, r.TLS, r.RemoteAddr)
	}
	if got := r.Header["Cookie"]; len(got) != 1 || got[0] != "a=1; b=2" {
		t.Errorf("Cookie %q", got)
	}
	if got := r.Header["X-Multi"]; !reflect.DeepEqual(got, []string{"1", "2"}) {
		t.Errorf("X-Multi %q", got)
	}
	if r.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	if FromContext(r.Context()).Get("HTTPS") != "on" {
		t.Error("vars not in context")
	}

	for name, bad := range map[string]Vars{
		"no method":      pairs("REQUEST_URI", "/"),
		"bad length":     pairs("REQUEST_METHOD", "GET", "CONTENT_LENGTH", "-1", "REQUEST_URI", "/"),
		"relative uri":   pairs("REQUEST_METHOD", "GET", "REQUEST_URI", "x"),
		"duplicate name": pairs("REQUEST_METHOD", "GET", "REQUEST_METHOD", "POST", "REQUEST_URI", "/"),
	} {
		if _, err := Request(context.Background(), bad, http.NoBody); err == nil {
			t.Errorf("%s: no error", name)
		} else if name == "duplicate name" && !errors.Is(err, ErrDuplicate) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestParseRequestURI: the shortcut gives exactly what url.ParseRequestURI
// gives, for URIs it takes and for those it hands on.
func TestParseRequestURI(t *testing.T) {
	for _, uri := range []string{
		"/", "/cgi-bin/hello.sh", "/a/b.php?x=1&y=2", "/a?", "/a??", "/a?b?c", "/a//b", "//host/path",
		"/a%20b", "/a%2Fb?q=%41", "/a!b", "/a(b)", "/a b", "/a#frag", "/a?q#f", "/a?x y",
		"/~user/$&+,:;=@", "/é", "/a\x7f", "/a?\x01", "*", "", "relative", "/a?b=c=d",
	} {
		want, werr := url.ParseRequestURI(uri)
		got, gerr := ParseRequestURI(uri)
		if (werr != nil) != (gerr != nil) {
			t.Errorf("%q: error %v, want %v", uri, gerr, werr)
			continue
		}
		if werr != nil {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %#v, want %#v", uri, *got, *want)
		}
		if got.EscapedPath() != want.EscapedPath() || got.RequestURI() != want.RequestURI() {
			t.Errorf("%q: escaped %q / %q, want %q / %q", uri, got.EscapedPath(), got.RequestURI(), want.EscapedPath(), want.RequestURI())
		}
	}
}

func FuzzParseRequestURI(f *testing.F) {
	for _, s := range []string{"/a?b", "/a%2F", "/x y", "/a?", "//h/p"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		want, werr := url.ParseRequestURI(uri)
		got, gerr := ParseRequestURI(uri)
		if (werr != nil) != (gerr != nil) || werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, %v; want %#v, %v", uri, got, gerr, want, werr)
		}
	})
}

func TestDuplicate(t *testing.T) {
	names := func(ns ...string) Vars {
		var v Vars
		for _, n := range ns {
			v = append(v, Var{Name: n})
		}
		return v
	}
	tests := []struct {
		v    Vars
		want int
	}{
		{names(), -1},
		{names("A"), -1},
		{names("SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME"), -1}, // same lengths, same last bytes
		{names("SERVER_NAME", "SERVER_PORT", "SERVER_NAME"), 2},
		{names("HTTP_X", "HTTP_X", "A"), -1}, // repeated headers are allowed
		{names("A", "HTTP_X", "B", "A"), 3},
		{names("", "x", ""), 2},
		{names("AB", "BB", "CB"), -1},
		{names("NAMEX", "NAMEY", "NAMEX"), 2},
	}
	for _, tt := range tests {
		if got := tt.v.duplicate(); got != tt.want {
			t.Errorf("duplicate(%v) = %d, want %d", tt.v, got, tt.want)
		}
	}
}
