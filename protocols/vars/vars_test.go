package vars

import (
	"context"
	"errors"
	"io"
	"net/http"
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
