// Command app is the HTTP application instance the integration tests put
// behind junction's pools. It answers every request with its name, POST
// requests with the SHA-256 of their body, /slow after a pause, and
// /headers with the request headers it received, one "Name: value" a line.
//
//	app -addr 127.0.0.1:PORT -name NAME
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8101", "listen address")
	name := flag.String("name", "app", "instance name in every answer")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		fmt.Fprintf(w, "%s slow\n", *name)
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s headers\n", *name)
		for k, vs := range r.Header {
			for _, v := range vs {
				fmt.Fprintf(w, "%s: %s\n", k, v)
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "%s %d %s\n", *name, n, hex.EncodeToString(h.Sum(nil)))
			return
		}
		fmt.Fprintf(w, "%s %s\n", *name, r.URL.Path)
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("%s listening on %s", *name, *addr)
	log.Fatal(srv.ListenAndServe())
}
