// Package httpcount wraps a response writer and a request body to record
// what the metrics and the access log report: the final status and the
// body bytes each way. Streaming keeps working through the wrappers
// (Flush, and Unwrap for http.ResponseController).
package httpcount

import (
	"io"
	"net/http"
)

// ResponseWriter records the final status and counts body bytes written.
type ResponseWriter struct {
	http.ResponseWriter
	// Code is the final status, 0 while nothing was written.
	Code int
	// Bytes counts body bytes written.
	Bytes int64
}

// WriteHeader records code unless it is an interim (1xx) response; the
// final status comes later.
func (w *ResponseWriter) WriteHeader(code int) {
	if w.Code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.Code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *ResponseWriter) Write(p []byte) (int, error) {
	if w.Code == 0 {
		w.Code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.Bytes += int64(n)
	return n, err
}

// Flush forwards to the codec's writer so streaming keeps working.
func (w *ResponseWriter) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush() //nolint:errcheck // Flusher has no error; the next Write reports it
}

// Unwrap lets http.ResponseController reach the codec's writer.
func (w *ResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Body counts request body bytes read.
type Body struct {
	io.ReadCloser
	// Bytes counts body bytes read.
	Bytes int64
}

func (b *Body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.Bytes += int64(n)
	return n, err
}
