package status

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/internal/spark"
)

// History is a pool's or an instance's recent traffic: one value per
// bucket, oldest first, the last bucket the current one (its rates over
// the part that has passed).
type History struct {
	// Start is when the first bucket began.
	Start time.Time `json:"start"`
	// IntervalSeconds is the length of a bucket.
	IntervalSeconds float64 `json:"interval_seconds"`
	// Requests and Errors are per second; P99 is the 99th percentile
	// latency of the bucket's requests, in seconds (0 without requests).
	Requests []float64 `json:"requests_per_second"`
	Errors   []float64 `json:"errors_per_second"`
	P99      []float64 `json:"p99_seconds"`
}

// historyOf converts a balancer history; nil for none.
func historyOf(ps []spark.Point) *History {
	if len(ps) == 0 {
		return nil
	}
	h := &History{Start: ps[0].Start, IntervalSeconds: spark.Interval.Seconds(),
		Requests: make([]float64, len(ps)), Errors: make([]float64, len(ps)), P99: make([]float64, len(ps))}
	for i, p := range ps {
		h.Requests[i] = round3(p.RequestRate())
		h.Errors[i] = round3(p.ErrorRate())
		h.P99[i] = p.P99.Seconds()
	}
	return h
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// Sparkline geometry: one x unit per bucket, a plot height of sparkH
// units above a baseline at sparkBase.
const (
	sparkH    = 22.0
	sparkBase = 23.0
)

// sparkline renders one series of h ("requests", "errors" or "p99") as
// an inline SVG polyline, scaled to its own peak, with the latest and peak
// values in its title and data attributes (for tooltips and tests).
func sparkline(h *History, series string) template.HTML {
	if h == nil {
		return ""
	}
	var vals []float64
	var format func(float64) string
	switch series {
	case "requests":
		vals, format = h.Requests, perSecond
	case "errors":
		vals, format = h.Errors, perSecond
	case "p99":
		vals, format = h.P99, latency
	default:
		return ""
	}
	peak := 0.0
	for _, v := range vals {
		peak = max(peak, v)
	}
	var pts strings.Builder
	for i, v := range vals {
		y := sparkBase
		if peak > 0 {
			y -= v / peak * sparkH
		}
		if i > 0 {
			pts.WriteByte(' ')
		}
		pts.WriteString(strconv.FormatFloat(float64(i)+0.5, 'f', 1, 64))
		pts.WriteByte(',')
		pts.WriteString(strconv.FormatFloat(y, 'f', 2, 64))
	}
	last := 0.0
	if len(vals) > 0 {
		last = vals[len(vals)-1]
	}
	minutes := int(h.IntervalSeconds * float64(len(vals)) / 60)
	title := fmt.Sprintf("%s, last %d min: now %s, peak %s", seriesLabel[series], minutes, format(last), format(peak))
	return template.HTML(fmt.Sprintf(`<svg class="spark %s" data-series="%s" data-last="%g" data-peak="%g" viewBox="0 0 %d 24" width="%d" height="24" preserveAspectRatio="none" role="img" aria-label="%s"><title>%s</title><line x1="0" y1="%g" x2="%d" y2="%g"/><polyline points="%s"/></svg>`,
		series, series, last, peak, len(vals), len(vals), template.HTMLEscapeString(title), template.HTMLEscapeString(title),
		sparkBase+0.5, len(vals), sparkBase+0.5, pts.String()) + `<small class="peak">` + template.HTMLEscapeString(format(peak)) + `</small>`)
}

var seriesLabel = map[string]string{"requests": "requests/s", "errors": "errors/s", "p99": "p99"}

// perSecond renders a rate.
func perSecond(f float64) string {
	switch {
	case f == 0:
		return "0/s"
	case f < 10:
		return strconv.FormatFloat(f, 'f', 2, 64) + "/s"
	}
	return strconv.FormatFloat(f, 'f', 0, 64) + "/s"
}

// capacityText says what bounds an instance's requests in flight, for
// the page and the JSON.
func capacityText(in balancer.InstanceStatus) string {
	if !in.AutoMaxConns {
		if in.Limit > 0 {
			return fmt.Sprintf("max_conns %d", in.Limit)
		}
		return "no bound"
	}
	c := in.Capacity
	var s string
	switch {
	case !in.CapacityKnown && in.CapacityError == "":
		s = fmt.Sprintf("not asked yet; fallback %d", in.Limit)
	case c.Max > 0:
		s = fmt.Sprintf("%d from %s", c.Max, c.Source)
	case in.CapacityKnown:
		s = fmt.Sprintf("unknown (%s); fallback %d", c.Why, in.Limit)
	default:
		s = fmt.Sprintf("unknown; fallback %d", in.Limit)
	}
	if in.CapacityError != "" {
		s += "; last probe failed"
	}
	return s
}

// idleWorkers is what the instance reported, or nil.
func idleWorkers(in balancer.InstanceStatus) *int {
	if !in.CapacityKnown || in.Capacity.Idle < 0 {
		return nil
	}
	n := in.Capacity.Idle
	return &n
}
