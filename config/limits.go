package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Limits are resource limits for each CGI script, in force before the
// script's first instruction (junction starts a limited script through a
// helper mode of its own binary, which sets them and then executes the
// script). Scripts of a backend without limits start as before, at no
// extra cost. An unset key (or 0) sets no limit. On a route, each key
// set overrides the backend's key of that name; the others stay the
// backend's.
type Limits struct {
	// CPU is the CPU time a script may use, in whole seconds ("10s",
	// "2m"): SIGXCPU then, and SIGKILL a second later if the script
	// handles SIGXCPU (RLIMIT_CPU). The script's response is a 502 (or
	// is cut short when it had started), and the signal is logged and
	// counted in junction_cgi_signals_total. Unlike timeout it counts
	// CPU, not time spent waiting.
	CPU time.Duration `mapstructure:"cpu"`
	// Memory bounds each script's address space (RLIMIT_AS), in bytes
	// or with a unit: "64MiB", "1GiB", "500MB". Allocations beyond it
	// fail inside the script, which reports them as it does (PHP's
	// "Allowed memory size exhausted", Perl's "Out of memory!"). Address
	// space is more than resident memory: runtimes that reserve much of
	// it up front (Go, the JVM) need generous values.
	Memory Size `mapstructure:"memory"`
	// Processes bounds the processes and threads of the user scripts run
	// as, all of them together (RLIMIT_NPROC), so a fork bomb stops
	// there. It needs user (the backend's) naming a user other than
	// junction's own and not root, or run_as: owner (or user_dir alone),
	// where each script runs as its owner: the kernel counts every process of
	// that user, junction's too when scripts run as junction, and does
	// not apply the limit to root.
	Processes int `mapstructure:"processes"`
	// OpenFiles bounds each script's open descriptors (RLIMIT_NOFILE).
	OpenFiles int `mapstructure:"open_files"`
	// FileSize bounds the size of each file a script writes
	// (RLIMIT_FSIZE), in bytes or with a unit as for memory; a write
	// beyond it ends the script with SIGXFSZ (or fails with EFBIG when
	// the script handles that signal).
	FileSize Size `mapstructure:"file_size"`
	// Nice is the scripts' niceness, 1 (slightly below junction's
	// priority) to 19 (the least CPU priority). A niceness junction
	// already has is never lowered.
	Nice int `mapstructure:"nice"`
}

// Size is a number of bytes, written as a number or with a unit: B,
// KiB, MiB, GiB, TiB (powers of 1024) or kB, MB, GB, TB (powers of
// 1000), e.g. "64MiB".
type Size int64

// sizeUnits are the units a Size accepts, keyed by lower case.
var sizeUnits = map[string]int64{
	"b":   1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
}

// parseSize reads "64MiB", "64 MiB", "1000000" or "500MB".
func parseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult := int64(1)
	if unit != "" {
		var ok bool
		if mult, ok = sizeUnits[strings.ToLower(unit)]; !ok {
			return 0, fmt.Errorf("%q is not a size like 65536, 64MiB or 1GiB (units: B, KiB, MiB, GiB, TiB; kB, MB, GB, TB)", s)
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("%q is not a size like 65536, 64MiB or 1GiB", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(n * mult), nil
}

// sizeHook decodes a Size from a number of bytes or a string with a
// unit.
func sizeHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[Size]() {
		return data, nil
	}
	switch d := data.(type) {
	case string:
		return parseSize(d)
	case int, int64, uint64:
		n, err := strconv.ParseInt(fmt.Sprint(d), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%v is too large", d)
		}
		return Size(n), nil
	case float64:
		if d != math.Trunc(d) || d > math.MaxInt64 || d < math.MinInt64 {
			return nil, fmt.Errorf("%v is not a whole number of bytes", d)
		}
		return Size(d), nil
	}
	return data, nil
}

// validate reports the problems of limits at key ("backends.x.limits").
// owner says who scripts run as when processes is set: "" when that is
// fine, else the reason it is not.
func (l *Limits) validate(v *validator, key, owner string) {
	if l == nil {
		return
	}
	switch {
	case l.CPU < 0:
		v.add(key+".cpu", "%v must be positive", l.CPU)
	case l.CPU%time.Second != 0:
		v.add(key+".cpu", "%v is not a whole number of seconds (the kernel counts CPU time in seconds)", l.CPU)
	}
	if l.Memory < 0 {
		v.add(key+".memory", "%d must not be negative", l.Memory)
	}
	if l.FileSize < 0 {
		v.add(key+".file_size", "%d must not be negative", l.FileSize)
	}
	v.nonNegative(key+".processes", l.Processes)
	v.nonNegative(key+".open_files", l.OpenFiles)
	if l.Nice < 0 || l.Nice > 19 {
		v.add(key+".nice", "%d is outside 1..19 (raising priority is not offered)", l.Nice)
	}
	if l.Processes > 0 && owner != "" {
		v.add(key+".processes", "%s", owner)
	}
}

// processesOwner says why b's scripts cannot take limits.processes, or
// "" when they can (as far as the file shows: that user is not
// junction's own is checked when the backend is built).
func (b *Backend) processesOwner() string {
	if b.RunAs == "owner" || (b.UserDir != "" && b.Root == "") {
		return "" // each script runs as its owner, never root
	}
	if b.User == "" || b.User == "root" || b.User == "0" {
		return "needs the backend's user naming a user other than junction's own and not root, or run_as: owner " +
			"(RLIMIT_NPROC counts every process of the user scripts run as, junction's too when that is junction's own, and does not bind root)"
	}
	return ""
}

// validateLimits checks a backend's limits: for type cgi only.
func (b *Backend) validateLimits(v *validator, key string) {
	if b.Type != BackendCGI {
		v.onlyFor(key, "type cgi", []setting{{"limits", b.Limits != nil}})
		return
	}
	b.Limits.validate(v, key+".limits", b.processesOwner())
}

// validateOverrides checks what route r (at key) overrides of its
// backend: timeout, max_concurrent and limits, on a cgi backend only.
func (c *Config) validateOverrides(v *validator, key string, r Route) {
	b := c.Backends[r.Backend]
	if b == nil {
		return // checkBackendRef reports it
	}
	if b.Type != BackendCGI {
		v.onlyFor(key, "routes to a cgi backend", []setting{
			{"timeout", r.Timeout != 0}, {"max_concurrent", r.MaxConcurrent != 0}, {"limits", r.Limits != nil},
		})
		return
	}
	v.positive(key+".timeout", r.Timeout)
	v.nonNegative(key+".max_concurrent", r.MaxConcurrent)
	if r.MaxConcurrent > b.MaxConcurrent && b.MaxConcurrent > 0 {
		v.add(key+".max_concurrent", "%d is more than backends.%s.max_concurrent (%d), inside which it bounds the route's scripts",
			r.MaxConcurrent, r.Backend, b.MaxConcurrent)
	}
	r.Limits.validate(v, key+".limits", b.processesOwner())
}

// HasOverrides reports whether the route sets any of its backend's
// settings for itself.
func (r Route) HasOverrides() bool {
	return r.Timeout != 0 || r.MaxConcurrent != 0 || r.Limits != nil
}
