package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/junction-gw/junction/cmd/junction/internal/httpcount"

	"github.com/prometheus/client_golang/prometheus"
)

// childKey names one of a listener's series for a backend: kind is a
// status class index (see codeClasses) or one of the kinds below.
type childKey struct {
	backend string
	kind    int
}

const (
	kindDuration = len(codeClasses) + iota
	kindRequestBytes
	kindResponseBytes
)

// Middleware counts the requests next serves for listener: totals by
// status class, duration, in-flight, and body bytes both ways. backendOf
// names the backend that served a request; it is called after next
// returns, and nil or "" means "none". The ResponseWriter next sees keeps
// Flush working and unwraps for http.ResponseController.
func (m *Metrics) Middleware(listener, protocol string, backendOf func(*http.Request) string, next http.Handler) http.Handler {
	inFlight := m.inFlight.WithLabelValues(listener, protocol)
	// Each series is looked up by its labels once, on first use (so no
	// zero series appears before it), then taken from children.
	var children sync.Map // childKey → prometheus.Counter or prometheus.Observer
	counter := func(vec *prometheus.CounterVec, k childKey, labels ...string) prometheus.Counter {
		if c, ok := children.Load(k); ok {
			return c.(prometheus.Counter)
		}
		c, _ := children.LoadOrStore(k, vec.WithLabelValues(labels...))
		return c.(prometheus.Counter)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		inFlight.Inc()
		defer inFlight.Dec()
		rw := &httpcount.ResponseWriter{ResponseWriter: w}
		var body *httpcount.Body
		if r.Body != nil && r.Body != http.NoBody {
			body = &httpcount.Body{ReadCloser: r.Body}
			r.Body = body
		}
		next.ServeHTTP(rw, r)

		backend := ""
		if backendOf != nil {
			backend = backendOf(r)
		}
		if backend == "" {
			backend = "none"
		}
		code := rw.Code
		if code == 0 {
			code = http.StatusOK // nothing written: net/http and the codecs answer 200
		}
		class := codeClassIndex(code)
		counter(m.requests, childKey{backend, class}, listener, protocol, backend, codeClasses[class]).Inc()
		dk := childKey{backend, kindDuration}
		d, ok := children.Load(dk)
		if !ok {
			d, _ = children.LoadOrStore(dk, m.duration.WithLabelValues(listener, protocol, backend))
		}
		d.(prometheus.Observer).Observe(time.Since(start).Seconds())
		if body != nil && body.Bytes > 0 {
			counter(m.requestBytes, childKey{backend, kindRequestBytes}, listener, protocol, backend).Add(float64(body.Bytes))
		}
		if rw.Bytes > 0 {
			counter(m.responseBytes, childKey{backend, kindResponseBytes}, listener, protocol, backend).Add(float64(rw.Bytes))
		}
	})
}
