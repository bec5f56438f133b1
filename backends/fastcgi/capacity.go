package fastcgi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgienv"
	"github.com/junction-gw/junction/internal/fcgiwire"
)

// maxStatusBytes bounds php-fpm's status page answer: with ?full its
// JSON is about 350 bytes per worker, so this is room for some 3000.
const maxStatusBytes = 1 << 20

// Capacity asks the instance how many requests it serves at once: with
// StatusPath, php-fpm's status page ("?json&full"); without,
// FCGI_GET_VALUES.
//
// php-fpm's status page lists its workers, which are the capacity only
// with pm = static (its "process manager" field); with pm = dynamic or
// ondemand workers come and go, and Max is 0 with Why saying so. A "max
// children" field, where a php-fpm reports it, is taken as it is. The
// workers are counted in the full list rather than read from "total
// processes": php-fpm 8.2 adds one to "active processes" for every
// request served on a kept connection (FCGI_KEEP_CONN) and puts the count
// right only once a second, so under keep-alive load its total climbs far
// past pm.max_children between corrections. Idle is the count of workers
// in state "Idle" for the same reason. php-fpm answers FCGI_GET_VALUES with FCGI_MPXS_CONNS
// only; servers built on libfcgi's or PHP's FastCGI code (php-cgi -b with
// PHP_FCGI_CHILDREN) answer FCGI_MAX_CONNS and FCGI_MAX_REQS, and Max is
// the smaller of them.
//
// Like Check, Capacity is not one of the pool's requests, and with
// KeepAlive it has finished connections closed while it waits for its
// own. When the capacity changes (php-fpm reloaded with another
// pm.max_children), the kept connections are closed: they belong to
// workers of the old configuration.
func (b *Backend) Capacity(ctx context.Context) (backends.Capacity, error) {
	if b.idle != nil {
		b.probing.Add(1)
		defer b.probing.Add(-1)
	}
	var c backends.Capacity
	var err error
	if b.status != "" {
		c, err = b.statusCapacity(ctx)
	} else {
		c, err = b.valuesCapacity(ctx)
	}
	if err != nil {
		return backends.Capacity{}, err
	}
	if prev := b.capacity.Swap(int64(c.Max)); prev != int64(c.Max) && prev != 0 {
		b.idle.CloseIdle()
	}
	return c, nil
}

// valuesCapacity reads FCGI_MAX_CONNS and FCGI_MAX_REQS.
func (b *Backend) valuesCapacity(ctx context.Context) (backends.Capacity, error) {
	vals, err := b.getValues(ctx)
	if err != nil {
		return backends.Capacity{}, err
	}
	c := backends.Capacity{Idle: -1, Source: "FCGI_GET_VALUES"}
	for _, name := range []string{"FCGI_MAX_CONNS", "FCGI_MAX_REQS"} {
		v, ok := vals[name]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return backends.Capacity{}, fmt.Errorf("fastcgi: %s: GET_VALUES_RESULT: %s %q is not a positive number", b.addr, name, v)
		}
		if c.Max == 0 || n < c.Max {
			c.Max = n
		}
	}
	if c.Max == 0 {
		c.Why = "the instance reports neither FCGI_MAX_CONNS nor FCGI_MAX_REQS (php-fpm: set health.status_path)"
	}
	return c, nil
}

// fpmStatus is the part of php-fpm's status page ("?json&full")
// Capacity reads.
type fpmStatus struct {
	ProcessManager string `json:"process manager"`
	TotalProcesses *int   `json:"total processes"`
	IdleProcesses  *int   `json:"idle processes"`
	MaxChildren    *int   `json:"max children"`
	// Processes is the full list, one entry per worker; nil without
	// "full".
	Processes []struct {
		PID   int    `json:"pid"`
		State string `json:"state"`
	} `json:"processes"`
}

// statusCapacity asks php-fpm's status page.
func (b *Backend) statusCapacity(ctx context.Context) (backends.Capacity, error) {
	target := b.status + "?json&full"
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost"+target, nil)
	if err != nil {
		return backends.Capacity{}, fmt.Errorf("fastcgi: %s: status page: %w", b.addr, err)
	}
	r.RemoteAddr = "127.0.0.1:0"
	r.RequestURI = target
	r.Header.Set("User-Agent", "junction-capacity")
	r.Header.Set("Accept", "application/json")
	// php-fpm answers the status page when SCRIPT_NAME is pm.status_path,
	// before it looks for a file.
	s := cgienv.Script{Filename: b.root + b.status, Name: b.status, DocumentRoot: b.root}
	w := &bodyWriter{header: http.Header{}}
	if err := b.serveScript(w, r, s); err != nil {
		var lr *backends.LocalRedirect
		if errors.As(err, &lr) {
			return backends.Capacity{}, fmt.Errorf("fastcgi: %s: status page %s: a local redirect", b.addr, b.status)
		}
		return backends.Capacity{}, err
	}
	switch {
	case w.over:
		return backends.Capacity{}, fmt.Errorf("fastcgi: %s: status page %s: answer longer than %d bytes", b.addr, b.status, maxStatusBytes)
	case w.status != http.StatusOK:
		return backends.Capacity{}, fmt.Errorf("fastcgi: %s: status page %s: status %d (is it php-fpm's pm.status_path?)", b.addr, b.status, w.status)
	}
	return parseFPMStatus(w.body.Bytes())
}

// parseFPMStatus reads php-fpm's status JSON.
func parseFPMStatus(body []byte) (backends.Capacity, error) {
	var st fpmStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return backends.Capacity{}, fmt.Errorf("fastcgi: status page: not php-fpm's JSON: %w", err)
	}
	if st.ProcessManager == "" {
		return backends.Capacity{}, errors.New(`fastcgi: status page: no "process manager" field: not php-fpm's status page`)
	}
	c := backends.Capacity{Idle: -1, Source: "status page"}
	workers := -1
	if st.Processes != nil {
		workers, c.Idle = len(st.Processes), 0
		for _, p := range st.Processes {
			if p.State == "Idle" {
				c.Idle++
			}
		}
	} else {
		if st.TotalProcesses != nil {
			workers = *st.TotalProcesses
		}
		if st.IdleProcesses != nil && *st.IdleProcesses >= 0 {
			c.Idle = *st.IdleProcesses
		}
	}
	switch {
	case st.MaxChildren != nil && *st.MaxChildren > 0:
		c.Max = *st.MaxChildren
	case st.ProcessManager == "static" && workers > 0:
		c.Max = workers
	case st.ProcessManager == "static":
		c.Why = "pm = static without total processes"
	default:
		c.Why = fmt.Sprintf("pm = %s: php-fpm reports the workers running, not pm.max_children", st.ProcessManager)
	}
	return c, nil
}

// bodyWriter keeps the status and up to maxStatusBytes of the body.
type bodyWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	over   bool
}

func (w *bodyWriter) Header() http.Header { return w.header }

func (w *bodyWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *bodyWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body.Len()+len(p) > maxStatusBytes {
		w.over = true
		return 0, errors.New("fastcgi: status page answer too long")
	}
	return w.body.Write(p)
}

// parsePairs decodes the name-value pairs of a GET_VALUES_RESULT. A
// malformed content yields an error and no pairs.
func parsePairs(b []byte) (map[string]string, error) {
	vals := map[string]string{}
	for len(b) > 0 {
		nl, used, err := fcgiwire.ReadLen(b)
		if err != nil {
			return nil, err
		}
		b = b[used:]
		vl, used, err := fcgiwire.ReadLen(b)
		if err != nil {
			return nil, err
		}
		b = b[used:]
		if nl > len(b) || vl > len(b)-nl {
			return nil, errors.New("name-value pair longer than the record")
		}
		vals[string(b[:nl])] = string(b[nl : nl+vl])
		b = b[nl+vl:]
	}
	return vals, nil
}
