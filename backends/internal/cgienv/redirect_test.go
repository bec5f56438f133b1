package cgienv

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/vars"
)

func TestLocalRedirect(t *testing.T) {
	front := vars.Vars{
		{Name: "REQUEST_METHOD", Value: "POST"}, {Name: "REQUEST_URI", Value: "/cgi-bin/form.cgi/p?x=1"},
		{Name: "QUERY_STRING", Value: "x=1"}, {Name: "SCRIPT_FILENAME", Value: "/srv/cgi-bin/form.cgi"},
		{Name: "SCRIPT_NAME", Value: "/cgi-bin/form.cgi"}, {Name: "PATH_INFO", Value: "/p"},
		{Name: "PATH_TRANSLATED", Value: "/srv/p"}, {Name: "DOCUMENT_URI", Value: "/cgi-bin/form.cgi/p"},
		{Name: "CONTENT_LENGTH", Value: "3"}, {Name: "CONTENT_TYPE", Value: "text/plain"},
		{Name: "REDIRECT_URL", Value: "/older"}, {Name: "REDIRECT_STATUS", Value: "200"},
		{Name: "HTTPS", Value: "on"}, {Name: "DOCUMENT_ROOT", Value: "/srv"}, {Name: "REMOTE_USER", Value: "alice"},
		{Name: "HTTP_X_A", Value: "a"},
	}
	r := httptest.NewRequest(http.MethodPost, "/cgi-bin/form.cgi/p?x=1", strings.NewReader("abc"))
	r.Header.Set("Content-Type", "text/plain")
	r.Header.Set("Content-Length", "3")
	r.Header.Set("X-A", "a")
	r.RemoteAddr = "192.0.2.1:4000"
	r = r.WithContext(vars.NewContext(r.Context(), front))

	err := LocalRedirect(r, "/done.html?ok=1")
	var lr *backends.LocalRedirect
	if !errors.As(err, &lr) || lr.Location != "/done.html?ok=1" || lr.Request == nil {
		t.Fatalf("LocalRedirect = %v", err)
	}
	next := lr.Request
	if next.Method != http.MethodGet || next.URL.Path != "/done.html" || next.URL.RawQuery != "ok=1" || next.RequestURI != "/done.html?ok=1" {
		t.Errorf("request line %s %s %q", next.Method, next.URL, next.RequestURI)
	}
	if next.Body != http.NoBody || next.ContentLength != 0 || next.Header.Get("Content-Type") != "" || next.Header.Get("Content-Length") != "" {
		t.Errorf("body kept: %v %d %v", next.Body, next.ContentLength, next.Header)
	}
	if next.Header.Get("X-A") != "a" || next.Host != r.Host || next.RemoteAddr != r.RemoteAddr {
		t.Errorf("request facts lost: %v %q %q", next.Header, next.Host, next.RemoteAddr)
	}
	want := vars.Vars{
		{Name: "HTTPS", Value: "on"}, {Name: "DOCUMENT_ROOT", Value: "/srv"}, {Name: "REMOTE_USER", Value: "alice"},
		{Name: "HTTP_X_A", Value: "a"},
		{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "REQUEST_URI", Value: "/done.html?ok=1"},
		{Name: "QUERY_STRING", Value: "ok=1"}, {Name: "REDIRECT_STATUS", Value: "200"},
		{Name: "REDIRECT_URL", Value: "/cgi-bin/form.cgi/p"}, {Name: "REDIRECT_QUERY_STRING", Value: "x=1"},
	}
	if got := vars.FromContext(next.Context()); !reflect.DeepEqual(got, want) {
		t.Errorf("variables\n got %q\nwant %q", got, want)
	}
	if err := vars.Validate(next, vars.FromContext(next.Context())); err != nil {
		t.Errorf("follow-up request is not valid: %v", err)
	}
	// The original is untouched.
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "text/plain" || !reflect.DeepEqual(vars.FromContext(r.Context()), front) {
		t.Errorf("original request changed")
	}

	// What the script behind the redirect sees.
	b, err := New(Options{ServerSoftware: "junction/test", LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	env := envMap(t, b.Env(next, Script{Filename: "/srv/done.cgi", Name: "/done.html", DocumentRoot: "/srv"}))
	for k, v := range map[string]string{
		"REQUEST_METHOD": "GET", "REQUEST_URI": "/done.html?ok=1", "QUERY_STRING": "ok=1",
		"SCRIPT_FILENAME": "/srv/done.cgi", "REDIRECT_STATUS": "200", "REDIRECT_URL": "/cgi-bin/form.cgi/p",
		"REMOTE_USER": "alice", "HTTPS": "on",
	} {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"CONTENT_LENGTH", "CONTENT_TYPE", "PATH_INFO", "DOCUMENT_URI"} {
		if v, ok := env[k]; ok && v != "" {
			t.Errorf("%s = %q after the redirect", k, v)
		}
	}
}

func TestLocalRedirectPlainHTTP(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/a", nil)
	var lr *backends.LocalRedirect
	if err := LocalRedirect(r, "/b"); !errors.As(err, &lr) {
		t.Fatalf("LocalRedirect = %v", err)
	}
	want := vars.Vars{{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "REQUEST_URI", Value: "/b"}, {Name: "QUERY_STRING", Value: ""},
		{Name: "REDIRECT_STATUS", Value: "200"}, {Name: "REDIRECT_URL", Value: "/a"}}
	if got := vars.FromContext(lr.Request.Context()); !reflect.DeepEqual(got, want) {
		t.Errorf("variables %q, want %q", got, want)
	}
}

func TestLocalRedirectBadLocation(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/a", nil)
	for _, loc := range []string{"", "x", "//host/x", "http://host/x", "/a b\x7f"} {
		err := LocalRedirect(r, loc)
		var lr *backends.LocalRedirect
		if errors.As(err, &lr) || backends.Status(err) != http.StatusBadGateway {
			t.Errorf("LocalRedirect(%q) = %v, want 502", loc, err)
		}
	}
}
