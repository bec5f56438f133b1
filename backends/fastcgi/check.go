package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/junction-gw/junction/backends"
)

// Check is an active health check. With HealthScript set it runs that
// script with a GET request and wants a 2xx or 3xx status (a local
// redirect counts as healthy: the script ran). Without, it connects and asks
// FCGI_GET_VALUES, wanting a GET_VALUES_RESULT. The context bounds the
// check; DialTimeout and Timeout apply too. A check is not one of the
// pool's requests: the pool's max_conns does not count it (it must answer
// while the instance is busy). A HealthScript run counts against
// Options.MaxConns like any request.
//
// With KeepAlive, a check uses a kept connection when one is idle (php-fpm
// closes a connection after GET_VALUES), and while it waits on a new one,
// connections whose request ends are closed rather than kept: every
// php-fpm worker may be holding a kept connection, and one must come free
// to accept the check's.
func (b *Backend) Check(ctx context.Context) error {
	if b.idle != nil {
		b.probing.Add(1)
		defer b.probing.Add(-1)
	}
	if b.health != "" {
		return b.checkScript(ctx)
	}
	_, err := b.getValues(ctx)
	return err
}

// getValues asks the instance FCGI_GET_VALUES, on a kept connection when
// one is idle, and returns the GET_VALUES_RESULT pairs (none when the
// instance answered UNKNOWN_TYPE). The caller raised b.probing when
// keep-alive is on.
func (b *Backend) getValues(ctx context.Context) (map[string]string, error) {
	if conn, ok := b.idle.Get(); ok {
		if vals, err := b.probe(ctx, conn); err == nil || ctx.Err() != nil {
			return vals, err
		}
		// The kept connection may have been closing (a php-fpm worker at
		// pm.max_requests): ask again on a new one.
	}
	conn, err := b.dial(ctx)
	if err != nil {
		return nil, err
	}
	// A connection kept just before probing was raised holds a worker the
	// new connection may need.
	if c, ok := b.idle.Get(); ok {
		_ = c.Close()
	}
	return b.probe(ctx, conn)
}

// probe asks FCGI_GET_VALUES on conn, which it closes, and returns the
// answer's pairs.
func (b *Backend) probe(ctx context.Context, conn net.Conn) (map[string]string, error) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() {
		_ = conn.Close() // wakes the read below
	})
	defer stop()
	timeout := b.timeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("fastcgi: %s: health check: %w", b.addr, err)
	}
	if _, err := conn.Write(getValuesRecord()); err != nil {
		return nil, fmt.Errorf("fastcgi: %s: health check: sending GET_VALUES: %w", b.addr, err)
	}
	rr := newResponseReader(conn, timeout, nil)
	defer rr.release()
	for {
		typ, id, content, err := readRecord(conn, rr.br, *rr.buf, timeout)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("fastcgi: %s: health check: %w", b.addr, context.Cause(ctx))
			}
			return nil, fmt.Errorf("fastcgi: %s: health check: waiting for GET_VALUES_RESULT: %w", b.addr, err)
		}
		switch {
		case id == 0 && typ == typeGetValuesResult:
			// A malformed answer is an answer all the same (alive); its
			// values are unknown.
			vals, _ := parsePairs(content)
			return vals, nil
		case id == 0 && typ == typeUnknownType:
			// The instance speaks FastCGI but not this management record:
			// alive all the same.
			return nil, nil
		}
	}
}

// checkScript runs HealthScript.
func (b *Backend) checkScript(ctx context.Context) error {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost"+b.prefix+b.health, nil)
	if err != nil {
		return fmt.Errorf("fastcgi: %s: health check: %w", b.addr, err)
	}
	r.RemoteAddr = "127.0.0.1:0"
	r.RequestURI = b.prefix + b.health
	r.Header.Set("User-Agent", "junction-health-check")
	w := &statusWriter{header: http.Header{}}
	err = b.Serve(w, r)
	var lr *backends.LocalRedirect
	switch {
	case errors.As(err, &lr):
		return nil
	case err != nil:
		return err
	case w.status < 200 || w.status >= 400:
		return fmt.Errorf("fastcgi: %s: health script %s: status %d", b.addr, b.health, w.status)
	}
	return nil
}

// statusWriter keeps the status and throws the body away.
type statusWriter struct {
	header http.Header
	status int
}

func (w *statusWriter) Header() http.Header { return w.header }

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}
