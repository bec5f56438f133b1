package fastcgi_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"

	"github.com/junction-gw/junction/protocols/fastcgi"
)

// TestServeReturnsErrServerClosed checks that a program using the package as
// a library can tell a clean stop from a failure, as with *http.Server.
func TestServeReturnsErrServerClosed(t *testing.T) {
	for _, stop := range []string{"Shutdown", "Close"} {
		t.Run(stop, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &fastcgi.Server{Handler: http.NotFoundHandler()}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(l) }()
			if stop == "Shutdown" {
				err = srv.Shutdown(context.Background())
			} else {
				err = srv.Close()
			}
			if err != nil {
				t.Fatalf("%s: %v", stop, err)
			}
			if err := <-served; !errors.Is(err, fastcgi.ErrServerClosed) {
				t.Fatalf("Serve after %s returned %v, want fastcgi.ErrServerClosed", stop, err)
			}
		})
	}
}
