package backends

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

func TestClientErrorStatus(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel2()
	tests := []struct {
		name   string
		err    error
		client bool
		status int
	}{
		{"short body", &ClientError{Err: io.ErrUnexpectedEOF}, true, http.StatusBadRequest},
		{"client gone", &ClientError{Err: ErrClientGone}, true, StatusClientClosedRequest},
		{"cancelled context", ContextError(cancelled, "test"), true, StatusClientClosedRequest},
		{"expired context", ContextError(expired, "test"), false, http.StatusGatewayTimeout},
		{"backend error", &Error{Status: http.StatusBadGateway, Err: io.ErrUnexpectedEOF}, false, http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsClientError(tt.err); got != tt.client {
				t.Errorf("IsClientError(%v) = %v, want %v", tt.err, got, tt.client)
			}
			if got := Status(tt.err); got != tt.status {
				t.Errorf("Status(%v) = %d, want %d", tt.err, got, tt.status)
			}
		})
	}
	if err := ContextError(cancelled, "test"); !errors.Is(err, context.Canceled) {
		t.Errorf("ContextError = %v, does not wrap context.Canceled", err)
	}
}
