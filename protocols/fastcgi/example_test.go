package fastcgi_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/junction-gw/junction/protocols/fastcgi"
)

// Serving an http.ServeMux over FastCGI, in place of net/http/fcgi: point
// nginx at the listener with
//
//	location / { include fastcgi_params; fastcgi_pass 127.0.0.1:9000; }
//
// Here the example plays nginx's part itself: it sends one POST as nginx
// would (BEGIN_REQUEST, PARAMS, STDIN) and prints the CGI-style response
// carried by the STDOUT records, then the END_REQUEST status.
func ExampleServer() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s got %q\n", r.Method, r.URL.Path, body)
	})

	l, err := net.Listen("tcp", "127.0.0.1:0") // nginx: fastcgi_pass 127.0.0.1:PORT
	if err != nil {
		log.Fatal(err)
	}
	srv := &fastcgi.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	// What nginx's fastcgi_params send for POST /echo with a 5-byte body.
	stdout, appStatus := fcgiRoundTrip(l.Addr().String(), []string{
		"REQUEST_METHOD", "POST",
		"REQUEST_URI", "/echo",
		"SCRIPT_NAME", "/echo",
		"QUERY_STRING", "",
		"CONTENT_TYPE", "text/plain",
		"CONTENT_LENGTH", "5",
		"SERVER_PROTOCOL", "HTTP/1.1",
		"SERVER_NAME", "example.org",
		"SERVER_PORT", "80",
		"REMOTE_ADDR", "192.0.2.1",
	}, "hello")
	fmt.Print(strings.ReplaceAll(stdout, "\r\n", "\n"))
	fmt.Println("END_REQUEST appStatus", appStatus)

	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	if err := <-served; !errors.Is(err, fastcgi.ErrServerClosed) {
		log.Fatal(err)
	}
	// Output:
	// Status: 200 OK
	// Content-Type: text/plain
	//
	// POST /echo got "hello"
	// END_REQUEST appStatus 0
}

// FastCGI 1.0 record types the example uses.
const (
	typeBeginRequest = 1
	typeEndRequest   = 3
	typeParams       = 4
	typeStdin        = 5
	typeStdout       = 6
)

// fcgiRoundTrip sends one RESPONDER request with id 1 (params as name,
// value pairs) and returns its STDOUT and END_REQUEST's appStatus.
func fcgiRoundTrip(addr string, params []string, stdin string) (string, uint32) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var req bytes.Buffer
	record := func(typ byte, content []byte) {
		hdr := []byte{1, typ, 0, 1, 0, 0, 0, 0} // version 1, request id 1
		binary.BigEndian.PutUint16(hdr[4:], uint16(len(content)))
		req.Write(hdr)
		req.Write(content)
	}
	record(typeBeginRequest, []byte{0, 1, 0, 0, 0, 0, 0, 0}) // role RESPONDER, no KEEP_CONN
	var p []byte
	for i := 0; i+1 < len(params); i += 2 {
		// Lengths below 128 take one byte each.
		p = append(p, byte(len(params[i])), byte(len(params[i+1])))
		p = append(p, params[i]...)
		p = append(p, params[i+1]...)
	}
	record(typeParams, p)
	record(typeParams, nil) // end of PARAMS
	if stdin != "" {
		record(typeStdin, []byte(stdin))
	}
	record(typeStdin, nil) // end of STDIN
	if _, err := c.Write(req.Bytes()); err != nil {
		log.Fatal(err)
	}

	var stdout strings.Builder
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			log.Fatal(err)
		}
		content := make([]byte, int(binary.BigEndian.Uint16(hdr[4:]))+int(hdr[6]))
		if _, err := io.ReadFull(c, content); err != nil {
			log.Fatal(err)
		}
		content = content[:binary.BigEndian.Uint16(hdr[4:])] // drop the padding
		switch hdr[1] {
		case typeStdout:
			stdout.Write(content)
		case typeEndRequest:
			return stdout.String(), binary.BigEndian.Uint32(content)
		}
	}
}
