package scgi_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/junction-gw/junction/protocols/scgi"
)

// Serving an http.ServeMux over SCGI, as flup's scgi server served a WSGI
// application: point nginx at the listener with
//
//	location / { include scgi_params; scgi_pass 127.0.0.1:4000; }
//
// Here the example plays nginx's part itself: it sends one request as nginx
// would (a netstring of variables, then the body) and prints the CGI-style
// response the server writes back.
func ExampleServer() {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello, %s (%s %s)\n", r.URL.Query().Get("name"), r.Method, r.URL.Path)
	})

	l, err := net.Listen("tcp", "127.0.0.1:0") // nginx: scgi_pass 127.0.0.1:PORT
	if err != nil {
		log.Fatal(err)
	}
	srv := &scgi.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	// What nginx's scgi_params send for GET /hello?name=gopher.
	resp := scgiRoundTrip(l.Addr().String(), []string{
		"CONTENT_LENGTH", "0",
		"SCGI", "1",
		"REQUEST_METHOD", "GET",
		"REQUEST_URI", "/hello?name=gopher",
		"QUERY_STRING", "name=gopher",
		"SERVER_PROTOCOL", "HTTP/1.1",
		"SERVER_NAME", "example.org",
		"SERVER_PORT", "80",
		"REMOTE_ADDR", "192.0.2.1",
	}, "")
	fmt.Print(strings.ReplaceAll(resp, "\r\n", "\n"))

	// Stop as an *http.Server stops: requests in flight finish first.
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	if err := <-served; !errors.Is(err, scgi.ErrServerClosed) {
		log.Fatal(err)
	}
	// Output:
	// Status: 200 OK
	// Content-Type: text/plain
	//
	// hello, gopher (GET /hello)
}

// scgiRoundTrip sends one SCGI request (variables as name, value pairs, then
// body) and returns everything the server wrote before it closed.
func scgiRoundTrip(addr string, vars []string, body string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var head strings.Builder
	for _, s := range vars {
		head.WriteString(s)
		head.WriteByte(0)
	}
	fmt.Fprintf(c, "%d:%s,%s", head.Len(), head.String(), body)
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		log.Fatal(err)
	}
	return string(b)
}
