package ajp13

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/junction-gw/junction/vars"
)

// FuzzForwardRequest decodes a packet, encodes what it decoded, decodes
// that again and expects the same request. Seeds: packets captured from
// Apache mod_proxy_ajp (testdata/fuzz/FuzzForwardRequest, see
// capture_test.go) and the fixtures below.
func FuzzForwardRequest(f *testing.F) {
	f.Add(fwd(f, 2, "/", []string{"Host", "h", "X-A", "b"}, strAttr(attrQueryString, "q=1")))
	f.Add(fwd(f, 0xFF, "/x", nil, strAttr(attrStoredMethod, "PATCH"), attribute{code: attrSSLKeySize, keySize: 256},
		reqAttr("AJP_REMOTE_PORT", "1"), strAttr(attrSecret, "s")))
	lim := decodeLimits{maxHeaderBytes: MaxPacketSize, maxHeaders: maxHeaders}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		buf := make([]byte, MaxPacketSize)
		p, err := readPacket(bytes.NewReader(pkt), buf)
		if err != nil {
			return
		}
		first, err := decodeForwardRequest(p, lim)
		if err != nil {
			return
		}
		// Everything decoded must render without failing.
		v := renderVars(first, "r")
		if err := v.Check(); err != nil {
			t.Fatalf("rendered vars repeat a name: %v", err)
		}
		// A request the codec accepts passes the one request check, with
		// every variable it renders.
		if r, err := first.httpRequest(t.Context(), "r"); err == nil {
			if err := vars.Validate(r, vars.FromContext(r.Context())); err != nil {
				t.Fatalf("accepted request fails vars.Validate: %v", err)
			}
		}
		// A null string re-encodes as an empty one (one byte longer), so
		// the round trip gets room beyond the packet size.
		again, ok := encodeForwardRequest(first, 4*MaxPacketSize)
		if !ok {
			t.Fatalf("decoded request does not re-encode: %+v", first)
		}
		second, err := decodeForwardRequest(again[headerLen:], lim)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if !reflect.DeepEqual(first, second) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", first, second)
		}
	})
}

// BenchmarkDecodeForwardRequest decodes a typical browser GET as Apache
// sends it and renders its variables and *http.Request.
func BenchmarkDecodeForwardRequest(b *testing.B) {
	pkt := fwd(b, 2, "/app/some%20path/index.cgi", []string{
		"Host", "www.example.test", "User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
		"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"Accept-Language", "en-US,en;q=0.5", "Accept-Encoding", "gzip, deflate, br",
		"Cookie", "JSESSIONID=0123456789abcdef.a; theme=dark", "Referer", "https://www.example.test/app/",
		"Upgrade-Insecure-Requests", "1", "Sec-Fetch-Dest", "document", "Sec-Fetch-Mode", "navigate",
	}, strAttr(attrQueryString, "page=2&sort=name"), reqAttr("AJP_REMOTE_PORT", "51234"), reqAttr("AJP_LOCAL_ADDR", "127.0.0.1"))
	p := pkt[headerLen:]
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeForwardRequest(p, testLimits); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode+request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := decodeForwardRequest(p, testLimits)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.httpRequest(b.Context(), "a"); err != nil {
				b.Fatal(err)
			}
		}
	})
	// With the CGI-style variables a CGI or FastCGI backend asks for.
	b.Run("decode+request+vars", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := decodeForwardRequest(p, testLimits)
			if err != nil {
				b.Fatal(err)
			}
			r, err := f.httpRequest(b.Context(), "a")
			if err != nil {
				b.Fatal(err)
			}
			if vars.FromContext(r.Context()) == nil {
				b.Fatal("no variables")
			}
		}
	})
}
