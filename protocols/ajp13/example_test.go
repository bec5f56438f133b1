package ajp13_test

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

	"github.com/junction-gw/junction/protocols/ajp13"
	"github.com/junction-gw/junction/vars"
)

// Serving an http.ServeMux over AJP13, as a servlet container would be
// served: point Apache at the listener with
//
//	ProxyPass /app/ ajp://127.0.0.1:8009/app/ secret=s3cret
//
// Here the example plays Apache's part itself: it sends one FORWARD_REQUEST
// as mod_proxy_ajp would and prints the SEND_HEADERS, SEND_BODY_CHUNK and
// END_RESPONSE packets that come back. The handler also reads the
// instance's route, which the server gives every request as a variable.
func ExampleServer() {
	mux := http.NewServeMux()
	mux.HandleFunc("/app/hello", func(w http.ResponseWriter, r *http.Request) {
		route, _ := vars.Lookup(r.Context(), ajp13.VarRoute)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello from route %s: %s %s (Host %s)\n", route, r.Method, r.URL.Path, r.Host)
	})

	l, err := net.Listen("tcp", "127.0.0.1:0") // Apache: ProxyPass ... ajp://127.0.0.1:PORT/...
	if err != nil {
		log.Fatal(err)
	}
	srv := &ajp13.Server{Handler: mux, Secret: "s3cret", Route: "a"}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(ajpForwardRequest("/app/hello", "example.org", "s3cret")); err != nil {
		log.Fatal(err)
	}
	ajpPrintResponse(c)

	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ajp13.ErrServerClosed) {
		log.Fatal(err)
	}
	// Output:
	// SEND_HEADERS 200 OK
	//   Content-Length: 54
	//   Content-Type: text/plain
	// SEND_BODY_CHUNK "hello from route a: GET /app/hello (Host example.org)\n"
	// END_RESPONSE reuse=1
}

// ajpForwardRequest builds the FORWARD_REQUEST packet of a GET without a
// body, as mod_proxy_ajp sends it.
func ajpForwardRequest(uri, host, secret string) []byte {
	var p bytes.Buffer
	u16 := func(n int) { binary.Write(&p, binary.BigEndian, uint16(n)) }
	str := func(s string) { u16(len(s)); p.WriteString(s); p.WriteByte(0) }
	p.WriteByte(2) // FORWARD_REQUEST
	p.WriteByte(2) // method GET
	str("HTTP/1.1")
	str(uri)
	str("192.0.2.1") // remote_addr
	str("192.0.2.1") // remote_host
	str(host)        // server_name
	u16(80)          // server_port
	p.WriteByte(0)   // is_ssl
	u16(1)           // one header:
	u16(0xA00B)      // Host (coded)
	str(host)
	p.WriteByte(0x0C) // attribute secret
	str(secret)
	p.WriteByte(0xFF) // end of attributes
	return append([]byte{0x12, 0x34, byte(p.Len() >> 8), byte(p.Len())}, p.Bytes()...)
}

// ajpPrintResponse reads container packets ('A' 'B', length, payload) up to
// END_RESPONSE and prints them.
func ajpPrintResponse(r io.Reader) {
	coded := map[uint16]string{0xA001: "Content-Type", 0xA003: "Content-Length", 0xA006: "Location", 0xA007: "Set-Cookie"}
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			log.Fatal(err)
		}
		payload := make([]byte, binary.BigEndian.Uint16(hdr[2:]))
		if _, err := io.ReadFull(r, payload); err != nil {
			log.Fatal(err)
		}
		p := bytes.NewReader(payload)
		u16 := func() uint16 { var n uint16; binary.Read(p, binary.BigEndian, &n); return n }
		str := func() string { b := make([]byte, u16()+1); io.ReadFull(p, b); return string(b[:len(b)-1]) }
		switch kind, _ := p.ReadByte(); kind {
		case 4: // SEND_HEADERS
			fmt.Printf("SEND_HEADERS %d %s\n", u16(), str())
			for n := u16(); n > 0; n-- {
				var name string
				if payload[len(payload)-p.Len()] == 0xA0 {
					name = coded[u16()]
				} else {
					name = str()
				}
				fmt.Printf("  %s: %s\n", name, str())
			}
		case 3: // SEND_BODY_CHUNK
			chunk := make([]byte, u16())
			io.ReadFull(p, chunk)
			fmt.Printf("SEND_BODY_CHUNK %q\n", chunk)
		case 5: // END_RESPONSE
			reuse, _ := p.ReadByte()
			fmt.Printf("END_RESPONSE reuse=%d\n", reuse)
			return
		}
	}
}
