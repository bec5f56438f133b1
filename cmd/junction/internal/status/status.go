// Package status serves junction's read-only status page, in the spirit
// of HAProxy's stats page and Apache's balancer-manager: listeners,
// routes, balanced pools with each instance's state, load and latency,
// and CGI backends' concurrency.
//
// /status is HTML that refreshes itself every 5 seconds, fits a phone
// screen and loads nothing from elsewhere (inline CSS, a strict Content
// Security Policy). /status.json is the same Snapshot as JSON. The page
// changes nothing: there are no forms and no actions.
package status

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

//go:embed status.html
var files embed.FS

var page = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"uptime":  uptime,
	"latency": latency,
	"when":    when,
	"rate":    func(r float64) string { return fmt.Sprintf("%.1f%%", r*100) },
	"join":    func(s []string) string { return strings.Join(s, ", ") },
	"short":   func(s string) string { return s[:min(len(s), 12)] },
	"percent": func(n, of int) int {
		if of <= 0 {
			return 0
		}
		return min(100, n*100/of)
	},
	"spark":    sparkline,
	"settings": settings,
}).ParseFS(files, "status.html"))

// Handler serves the snapshot returned by snap: as JSON for paths ending
// in ".json" (mount it at /status.json), else as the HTML page (mount it
// at /status). Only GET and HEAD are allowed.
func Handler(snap func() Snapshot) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s := snap()
		if s.Now.IsZero() {
			s.Now = time.Now()
		}
		if !s.Started.IsZero() {
			s.UptimeSeconds = s.Now.Sub(s.Started).Seconds()
		}
		var b bytes.Buffer
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if strings.HasSuffix(r.URL.Path, ".json") {
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			if err := enc.Encode(s); err != nil {
				http.Error(w, "status: encoding: "+err.Error(), http.StatusInternalServerError)
				return
			}
			h.Set("Content-Type", "application/json")
		} else {
			if err := page.Execute(&b, s); err != nil {
				http.Error(w, "status: rendering: "+err.Error(), http.StatusInternalServerError)
				return
			}
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		}
		h.Set("Content-Length", fmt.Sprint(b.Len()))
		if r.Method == http.MethodHead {
			return
		}
		w.Write(b.Bytes()) //nolint:errcheck // the client went away
	})
}

// uptime renders seconds as "3d 4h 5m" (or "42s" under a minute).
func uptime(sec float64) string {
	d := time.Duration(sec) * time.Second
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	days := int(d / (24 * time.Hour))
	hours := int(d/time.Hour) % 24
	mins := int(d/time.Minute) % 60
	if days > 0 {
		return fmt.Sprintf("%dd %dh %dm", days, hours, mins)
	}
	if hours > 0 {
		return fmt.Sprintf("%dh %dm", hours, mins)
	}
	return fmt.Sprintf("%dm", mins)
}

// latency renders seconds as milliseconds, "–" when unknown.
func latency(sec float64) string {
	switch {
	case sec <= 0:
		return "–"
	case sec < 0.01:
		return fmt.Sprintf("%.2f ms", sec*1000)
	case sec < 10:
		return fmt.Sprintf("%.0f ms", sec*1000)
	}
	return fmt.Sprintf("%.1f s", sec)
}

// when renders t in UTC, "–" when zero.
func when(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// settings renders a route's own cgi settings: "timeout 2m0s ·
// max_concurrent 2 · cpu 10s, memory 64 MiB".
func settings(c *RouteCGI) string {
	if c == nil {
		return ""
	}
	var parts, lims []string
	if c.TimeoutSeconds > 0 {
		parts = append(parts, "timeout "+seconds(c.TimeoutSeconds))
	}
	if c.MaxConcurrent > 0 {
		parts = append(parts, fmt.Sprintf("max_concurrent %d", c.MaxConcurrent))
	}
	if l := c.Limits; l != nil {
		if l.CPUSeconds > 0 {
			lims = append(lims, "cpu "+seconds(l.CPUSeconds))
		}
		if l.MemoryBytes > 0 {
			lims = append(lims, "memory "+size(l.MemoryBytes))
		}
		if l.Processes > 0 {
			lims = append(lims, fmt.Sprintf("processes %d", l.Processes))
		}
		if l.OpenFiles > 0 {
			lims = append(lims, fmt.Sprintf("open_files %d", l.OpenFiles))
		}
		if l.FileSizeBytes > 0 {
			lims = append(lims, "file_size "+size(l.FileSizeBytes))
		}
		if l.Nice > 0 {
			lims = append(lims, fmt.Sprintf("nice %d", l.Nice))
		}
	}
	if len(lims) > 0 {
		parts = append(parts, "limits "+strings.Join(lims, ", "))
	}
	return strings.Join(parts, " · ")
}

// seconds renders a duration in seconds as Go writes durations ("1m30s").
func seconds(sec float64) string {
	return time.Duration(sec * float64(time.Second)).String()
}

// size renders bytes in the largest binary unit that divides them
// ("64 MiB"), as the configuration file may write them.
func size(n int64) string {
	for _, u := range []struct {
		name string
		of   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.of == 0 {
			return fmt.Sprintf("%d %s", n/u.of, u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}
