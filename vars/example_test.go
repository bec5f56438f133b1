package vars_test

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/junction-gw/junction/protocols/scgi"
	"github.com/junction-gw/junction/vars"
)

// A handler served by any junction codec finds what the front server sent
// (SCRIPT_FILENAME, DOCUMENT_ROOT, HTTPS, custom scgi_param / fastcgi_param
// values, AJP attributes) in its request context. Here nginx's part is
// played by hand over SCGI, with two variables nginx would send for
//
//	scgi_param DOCUMENT_ROOT /srv/www;
//	scgi_param APP_TENANT    blue;
func ExampleFromContext() {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := vars.FromContext(r.Context())
		fmt.Fprintf(w, "DOCUMENT_ROOT=%s\n", v.Get("DOCUMENT_ROOT"))
		fmt.Fprintf(w, "APP_TENANT=%s\n", v.Get("APP_TENANT"))
		// Lookup tells a variable the front server did not send from an
		// empty one, and reads just that one variable.
		if _, ok := vars.Lookup(r.Context(), "HTTPS"); !ok {
			fmt.Fprintln(w, "HTTPS not sent: plain http")
		}
	})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &scgi.Server{Handler: handler}
	go srv.Serve(l)
	defer srv.Close()

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var head strings.Builder
	for _, s := range []string{
		"CONTENT_LENGTH", "0", "SCGI", "1",
		"REQUEST_METHOD", "GET", "REQUEST_URI", "/", "SERVER_PROTOCOL", "HTTP/1.1",
		"DOCUMENT_ROOT", "/srv/www", "APP_TENANT", "blue",
	} {
		head.WriteString(s + "\x00")
	}
	fmt.Fprintf(c, "%d:%s,", head.Len(), head.String())
	resp, err := io.ReadAll(c)
	if err != nil {
		log.Fatal(err)
	}
	_, body, _ := strings.Cut(string(resp), "\r\n\r\n")
	fmt.Print(body)
	// Output:
	// DOCUMENT_ROOT=/srv/www
	// APP_TENANT=blue
	// HTTPS not sent: plain http
}

// NewContext gives a handler under test the variables a front server would
// have sent, without one.
func ExampleNewContext() {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if vars.FromContext(r.Context()).Get("HTTPS") != "on" {
			http.Error(w, "use https", http.StatusForbidden)
			return
		}
		fmt.Fprintln(w, "secure")
	})

	for _, v := range []vars.Vars{nil, {{Name: "HTTPS", Value: "on"}}} {
		r := httptest.NewRequest("GET", "/", nil)
		r = r.WithContext(vars.NewContext(r.Context(), v))
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		fmt.Print(w.Code, " ", w.Body.String())
	}
	// Output:
	// 403 use https
	// 200 secure
}
