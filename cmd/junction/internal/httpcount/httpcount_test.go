package httpcount

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCounts(t *testing.T) {
	interim := &ResponseWriter{ResponseWriter: httptest.NewRecorder()}
	interim.WriteHeader(http.StatusEarlyHints) // interim: not the final status
	interim.WriteHeader(http.StatusCreated)
	if interim.Code != http.StatusCreated {
		t.Errorf("final status %d after an interim 103", interim.Code)
	}

	rec := httptest.NewRecorder()
	w := &ResponseWriter{ResponseWriter: rec}
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, "hello")
	if err := http.NewResponseController(w).Flush(); err != nil {
		t.Fatalf("Flush through the wrapper: %v", err)
	}
	if w.Code != http.StatusCreated || w.Bytes != 5 || !rec.Flushed {
		t.Errorf("code %d bytes %d flushed %v", w.Code, w.Bytes, rec.Flushed)
	}

	b := &Body{ReadCloser: io.NopCloser(strings.NewReader("abcdef"))}
	if n, _ := io.Copy(io.Discard, b); n != 6 || b.Bytes != 6 {
		t.Errorf("read %d, counted %d", n, b.Bytes)
	}

	w2 := &ResponseWriter{ResponseWriter: httptest.NewRecorder()}
	w2.Write([]byte("x"))
	if w2.Code != http.StatusOK {
		t.Errorf("implicit status %d", w2.Code)
	}
}
