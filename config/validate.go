package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/junction-gw/junction/internal/sockaddr"
)

// Validate is phase three: it reports every problem in c, each prefixed
// with its key path ("listeners[1].address: ..."), joined with errors.Join.
// It checks the configuration itself, not the filesystem: a missing script
// directory is reported when junction starts.
func (c *Config) Validate() error {
	v := &validator{}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		v.add("log.format", "%q is not one of text, json", c.Log.Format)
	}
	switch c.Log.Access {
	case "combined", "json", "off":
	default:
		v.add("log.access", "%q is not one of combined, json, off", c.Log.Access)
	}
	if c.Log.AccessFile != "" && c.Log.Access == "off" {
		v.add("log.access_file", "set, but log.access is off")
	}
	if c.Group != "" && c.User == "" {
		v.add("group", "%q is set without user", c.Group)
	}
	v.positive("shutdown_timeout", c.ShutdownTimeout)
	if len(c.Listeners) == 0 {
		v.add("listeners", "at least one listener is required")
	}
	for i := range c.Listeners {
		c.Listeners[i].validate(v, fmt.Sprintf("listeners[%d]", i), c)
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if !strings.HasPrefix(r.Prefix, "/") {
			v.add(key+".prefix", "%q must start with /", r.Prefix)
		}
		c.checkBackendRef(v, key+".backend", r.Backend, true)
		if r.Shadow != nil {
			r.Shadow.validate(v, key+".shadow", c, r)
		}
		if r.Authorizer != nil {
			r.Authorizer.validate(v, key+".authorizer")
		}
		c.validateOverrides(v, key, r) // limits.go
	}
	for _, name := range sortedKeys(c.Backends) {
		key := "backends." + name
		if b := c.Backends[name]; b == nil {
			v.add(key, "empty backend (type is required)")
		} else {
			b.validate(v, key)
		}
	}
	if c.Metrics.Address != "" {
		if err := checkAddress(c.Metrics.Address); err != nil {
			v.add("metrics.address", "%v", err)
		}
	}
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(key, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (v *validator) positive(key string, d time.Duration) {
	if d == TimeoutOff {
		v.add(key, "-1 (off) is for write_timeout only")
		return
	}
	if d < 0 {
		v.add(key, "%v must be positive", d)
	}
}

func (v *validator) nonNegative(key string, n int) {
	if n < 0 {
		v.add(key, "%d must not be negative", n)
	}
}

// setting is a key and whether the file set it.
type setting struct {
	name string
	set  bool
}

// onlyFor reports each set key that does not apply here.
func (v *validator) onlyFor(key, scope string, settings []setting) {
	for _, s := range settings {
		if s.set {
			v.add(key+"."+s.name, "applies to %s only", scope)
		}
	}
}

func (c *Config) checkBackendRef(v *validator, key, name string, required bool) {
	switch {
	case name == "" && required:
		v.add(key, "a backend name is required")
	case name == "":
	case c.Backends[name] == nil:
		v.add(key, "no backend named %q under backends", name)
	}
}

func (l *Listener) validate(v *validator, key string, c *Config) {
	switch l.Protocol {
	case ProtocolSCGI, ProtocolFastCGI, ProtocolAJP, ProtocolHTTP:
	case "":
		v.add(key+".protocol", "required (scgi, fastcgi, ajp or http)")
	default:
		v.add(key+".protocol", "%q is not one of scgi, fastcgi, ajp, http", l.Protocol)
	}
	if err := checkListenAddress(l.Address); err != nil {
		v.add(key+".address", "%v", err)
	}
	unix := strings.HasPrefix(l.Address, "unix:")
	if !unix {
		v.onlyFor(key, "unix: addresses", []setting{
			{"socket_mode", l.SocketMode != 0}, {"socket_owner", l.SocketOwner != ""}, {"socket_group", l.SocketGroup != ""},
		})
	}
	l.validateAllow(v, key, unix) // allow.go
	if l.SocketMode > 0o777 {
		v.add(key+".socket_mode", "%s is more than a permission (0777 at most)", l.SocketMode)
	}
	c.checkBackendRef(v, key+".backend", l.Backend, len(c.Routes) == 0)
	if l.MaxHeaderBytes < 0 {
		v.add(key+".max_header_bytes", "%d must be positive", l.MaxHeaderBytes)
	}
	v.positive(key+".read_timeout", l.ReadTimeout)
	v.positive(key+".idle_timeout", l.IdleTimeout)
	if l.WriteTimeout < 0 && l.WriteTimeout != TimeoutOff {
		v.add(key+".write_timeout", "%v must be positive, or -1 to turn it off", l.WriteTimeout)
	}
	l.validateFastCGI(v, key)
	l.validateAJP(v, key)
	l.validateSpool(v, key) // spool.go
}

func (l *Listener) validateFastCGI(v *validator, key string) {
	if l.Protocol != ProtocolFastCGI {
		v.onlyFor(key, "protocol fastcgi", []setting{
			{"max_conns", l.MaxConns != 0}, {"max_requests", l.MaxRequests != 0},
			{"max_requests_per_conn", l.MaxRequestsPerConn != 0}, {"multiplex", l.Multiplex},
		})
		return
	}
	v.nonNegative(key+".max_conns", l.MaxConns)
	v.nonNegative(key+".max_requests", l.MaxRequests)
	v.nonNegative(key+".max_requests_per_conn", l.MaxRequestsPerConn)
	if !l.Multiplex && l.MaxRequestsPerConn > 1 {
		v.add(key+".max_requests_per_conn", "%d needs multiplex: true", l.MaxRequestsPerConn)
	}
}

func (l *Listener) validateAJP(v *validator, key string) {
	if l.Protocol != ProtocolAJP {
		v.onlyFor(key, "protocol ajp", []setting{
			{"packet_size", l.PacketSize != 0}, {"secret", l.Secret != ""}, {"route", l.Route != ""},
		})
		return
	}
	if l.PacketSize < 8192 || l.PacketSize > 65536 {
		v.add(key+".packet_size", "%d is outside 8192..65536", l.PacketSize)
	}
	// AJP carries no authentication of its own (CVE-2020-1938, Ghostcat):
	// anyone who can connect can forge any request attribute.
	if l.Secret == "" && !loopback(l.Address) {
		v.add(key+".secret", "required when an ajp listener is not on a loopback address or unix socket")
	}
}

// checkListenAddress accepts what checkAddress does and inherited
// sockets: "fd:N" (a listening socket on descriptor N) and "systemd" or
// "systemd:NAME" (socket activation).
func checkListenAddress(addr string) error {
	if n, ok := strings.CutPrefix(addr, "fd:"); ok {
		if _, err := strconv.ParseUint(n, 10, 31); err != nil {
			return fmt.Errorf("%q: fd:N needs a descriptor number", addr)
		}
		return nil
	}
	if addr == "systemd" {
		return nil
	}
	if name, ok := strings.CutPrefix(addr, "systemd:"); ok {
		if name == "" || strings.ContainsRune(name, ':') {
			return fmt.Errorf("%q: systemd:NAME needs a socket name without colons", addr)
		}
		return nil
	}
	if addr == "" {
		return errors.New("required (host:port, unix:/path, fd:N, systemd or systemd:NAME)")
	}
	return checkAddress(addr)
}

// checkAddress accepts "host:port" and "unix:/path".
func checkAddress(addr string) error {
	if addr == "" {
		return errors.New("required (host:port or unix:/path)")
	}
	if _, err := sockaddr.Parse(addr); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "sockaddr: "))
	}
	return nil
}

// loopback reports whether addr is a unix socket or a TCP address that
// only the local host can reach.
func loopback(addr string) bool {
	if strings.HasPrefix(addr, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (b *Backend) validate(v *validator, key string) {
	b.validateLimits(v, key) // limits.go
	switch b.Type {
	case BackendCGI:
		b.validateCGI(v, key)
	case BackendHTTP, BackendFastCGI:
		b.validatePool(v, key) // pool.go
	case "":
		v.add(key+".type", "required (cgi, http or fastcgi)")
	default:
		v.add(key+".type", "%q is not a known backend type (cgi, http, fastcgi)", b.Type)
	}
}

func (b *Backend) validateCGI(v *validator, key string) {
	b.rejectPoolKeys(v, key) // pool.go
	switch {
	case b.Root == "" && b.Script == "" && b.UserDir == "":
		v.add(key, "one of root or script is required (or user_dir)")
	case b.Root != "" && b.Script != "":
		v.add(key+".script", "set either root or script, not both")
	}
	if b.URLPrefix != "" && !strings.HasPrefix(b.URLPrefix, "/") {
		v.add(key+".url_prefix", "%q must start with /", b.URLPrefix)
	}
	v.positive(key+".timeout", b.Timeout)
	v.positive(key+".queue_timeout", b.QueueTimeout)
	v.nonNegative(key+".max_concurrent", b.MaxConcurrent)
	v.nonNegative(key+".max_queue", b.MaxQueue)
	v.nonNegative(key+".max_header_bytes", b.MaxHeaderBytes)
	if b.MaxBodySpool < 0 {
		v.add(key+".max_body_spool", "%d must not be negative (0 refuses bodies without a length with 411)", b.MaxBodySpool)
	}
	if b.SpoolDir != "" && b.MaxBodySpool == 0 {
		v.add(key+".spool_dir", "has no effect without max_body_spool")
	}
	b.validateEnv(v, key) // pool.go
	b.validateRunner(v, key)
}

// envName accepts what a shell can export: letters, digits, underscore,
// not starting with a digit.
func envName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
