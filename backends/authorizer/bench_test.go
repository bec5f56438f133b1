package authorizer

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/junction-gw/junction/backends"
)

// BenchmarkAuthorize measures one allowed GET through the authorizer: an
// in-process FastCGI authorizer on a unix socket, a guarded backend that
// answers at once; a connection per request (dial) and kept connections
// (keepalive).
func BenchmarkAuthorize(b *testing.B) {
	for _, keep := range []int{0, 4} {
		name := "dial"
		if keep > 0 {
			name = "keepalive"
		}
		b.Run(name, func(b *testing.B) {
			f := startFake(b, fixed("Status: 200\r\nVariable-REMOTE_USER: alice\r\n\r\n"))
			next := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
				w.WriteHeader(http.StatusNoContent)
				return nil
			})
			a, err := New(next, Options{Instances: []string{f.addr()}, Script: "/check.php", KeepAlive: keep,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			r := httptest.NewRequest("GET", "/x?y=1", nil)
			r.Header.Set("Authorization", "Bearer good")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				w := httptest.NewRecorder()
				if err := a.Serve(w, r); err != nil || w.Code != http.StatusNoContent {
					b.Fatalf("Serve = %v, %d", err, w.Code)
				}
			}
		})
	}
}
