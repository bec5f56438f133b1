package config

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/junction-gw/junction/vars"
)

// Shadow sends a copy of a route's requests to a second backend and
// compares its answers with the route's own backend, whose answers alone
// reach the client.
type Shadow struct {
	// Backend names the backend that receives the copies. Required.
	Backend string `mapstructure:"backend"`
	// Percent of the eligible requests copied, 0 to 100. Default 100.
	Percent *float64 `mapstructure:"percent"`
	// Methods shadowed. Default GET and HEAD; any other method listed
	// runs twice (junction check warns).
	Methods []string `mapstructure:"methods"`
	// Compare lists what is compared: status, content_type, location,
	// body (its SHA-256) and header:NAME. Default status, content_type,
	// body.
	Compare []string `mapstructure:"compare"`
	// Queue bounds the copies waiting to be sent; beyond it they are
	// dropped (and counted). Default 64, at most 65536.
	Queue int `mapstructure:"queue"`
	// MaxBody is the largest request body copied, in bytes; requests with
	// larger bodies are not shadowed (counted as dropped). Default 1048576
	// (1 MiB).
	MaxBody int64 `mapstructure:"max_body"`
	// Timeout bounds each copy's exchange with the shadow backend. Its
	// own: the client's request ending never cancels it. Default 30s.
	Timeout time.Duration `mapstructure:"timeout"`
}

// PercentOrDefault is Percent, 100 when unset.
func (s *Shadow) PercentOrDefault() float64 {
	if s.Percent == nil {
		return 100
	}
	return *s.Percent
}

// shadowAspects are the compare entries besides header:NAME.
var shadowAspects = []string{"status", "content_type", "location", "body"}

// maxShadowQueue bounds shadow.queue: the queue is allocated whole when
// the route is built, and copies waiting beyond this many are stale
// anyway.
const maxShadowQueue = 1 << 16

// safeMethods may run twice without changing anything.
var safeMethods = []string{http.MethodGet, http.MethodHead}

func (s *Shadow) validate(v *validator, key string, c *Config, route Route) {
	c.checkBackendRef(v, key+".backend", s.Backend, true)
	if s.Backend != "" && strings.EqualFold(s.Backend, route.Backend) {
		v.add(key+".backend", "%q is the route's own backend", s.Backend)
	}
	if p := s.PercentOrDefault(); !(p >= 0 && p <= 100) { // NaN too
		v.add(key+".percent", "%g is not between 0 and 100", p)
	}
	for i, m := range s.Methods {
		if !vars.ValidToken(m) || strings.ToUpper(m) != m {
			v.add(fmt.Sprintf("%s.methods[%d]", key, i), "%q is not a method name (upper case, e.g. GET)", m)
		}
	}
	for i, a := range s.Compare {
		name, header := strings.CutPrefix(a, "header:")
		if header && vars.ValidToken(name) || !header && slices.Contains(shadowAspects, a) {
			continue
		}
		v.add(fmt.Sprintf("%s.compare[%d]", key, i), "%q is not one of %s or header:NAME", a, strings.Join(shadowAspects, ", "))
	}
	switch {
	case s.Queue < 0:
		v.add(key+".queue", "%d is negative", s.Queue)
	case s.Queue > maxShadowQueue:
		v.add(key+".queue", "%d is more than %d", s.Queue, maxShadowQueue)
	}
	if s.MaxBody < 0 {
		v.add(key+".max_body", "%d is negative", s.MaxBody)
	}
	if s.Timeout < 0 {
		v.add(key+".timeout", "%v is negative", s.Timeout)
	}
}

// shadowWarnings names the shadowed methods that are not safe to run
// twice.
func (c *Config) shadowWarnings() []string {
	var out []string
	for i, r := range c.Routes {
		if r.Shadow == nil {
			continue
		}
		var unsafe []string
		for _, m := range r.Shadow.Methods {
			if !slices.Contains(safeMethods, m) {
				unsafe = append(unsafe, m)
			}
		}
		if len(unsafe) > 0 {
			out = append(out, fmt.Sprintf("routes[%d].shadow.methods: %s requests to %s run twice, on %s and on %s",
				i, strings.Join(unsafe, ", "), r.Prefix, r.Backend, r.Shadow.Backend))
		}
	}
	return out
}
