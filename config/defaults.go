package config

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Defaults, each with the reason it was chosen.
const (
	// Long enough for a CGI script to finish a normal request after
	// SIGTERM, short enough for systemd's default 90s stop timeout.
	defaultShutdownTimeout = 30 * time.Second
	// Big enough for nginx and Apache's largest default header sets plus
	// cookies; small enough that a hostile head cannot cost much memory.
	defaultMaxHeaderBytes = 64 << 10
	// A front server sends the head at once and streams the body; 30s
	// covers a slow upload's pauses without holding dead connections.
	defaultReadTimeout = 30 * time.Second
	// Web servers keep FastCGI/AJP connections open between requests; a
	// minute matches their own idle defaults without leaking descriptors.
	defaultIdleTimeout = 60 * time.Second
	// FastCGI: the default FCGI_MAX_CONNS and FCGI_MAX_REQS we announce;
	// far above what one nginx worker pool opens, well under fd limits.
	defaultMaxConns    = 256
	defaultMaxRequests = 1024
	// One request per connection unless the server multiplexes, which
	// nginx and Apache never do; 64 bounds one multiplexing peer.
	defaultMaxRequestsPerConnMux = 64
	// nginx's send_timeout and Apache's Timeout: a front server that has
	// not taken a single write for a minute is stuck or gone.
	defaultWriteTimeout = 60 * time.Second
	// AJP13's standard packet size; mod_jk and mod_proxy_ajp default to it.
	defaultPacketSize = 8192
	// Matches nginx's default scgi_read_timeout/fastcgi_read_timeout: the
	// front server gives up then anyway.
	defaultBackendTimeout = 60 * time.Second
	// Bounds fork load on a small machine while serving real traffic.
	defaultMaxConcurrent = 64
	// A queued request that waits longer is better answered with 503 now.
	defaultQueueTimeout = 10 * time.Second
)

// setDefaults is phase two: fill in what the file left unset, and fold the
// names that are case-insensitive.
func (c *Config) setDefaults() {
	if c.Log.Level == "" {
		c.Log.Level = "info" // debug is too chatty for production
	}
	if c.Log.Format == "" {
		c.Log.Format = "text" // readable in a terminal and in journald
	}
	if c.Log.Access == "" {
		c.Log.Access = "off" // the front server already logs every request
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = defaultShutdownTimeout
	}
	for i := range c.Listeners {
		c.Listeners[i].setDefaults()
	}
	for i := range c.Routes {
		c.Routes[i].Backend = strings.ToLower(c.Routes[i].Backend)
		if a := c.Routes[i].Authorizer; a != nil {
			a.setDefaults()
		}
	}
	for _, b := range c.Backends {
		if b != nil {
			b.setDefaults()
		}
	}
}

func (l *Listener) setDefaults() {
	l.Protocol = strings.ToLower(l.Protocol)
	// Backend names are map keys, which the loader folds to lower case.
	l.Backend = strings.ToLower(l.Backend)
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if l.ReadTimeout == 0 {
		l.ReadTimeout = defaultReadTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = defaultIdleTimeout
	}
	// net/http's server, behind the http listener, bounds the whole
	// response instead of each write: a default there would cut every
	// stream at a minute.
	if l.WriteTimeout == 0 && l.Protocol != ProtocolHTTP {
		l.WriteTimeout = defaultWriteTimeout
	}
	l.setSpoolDefaults() // spool.go
	switch l.Protocol {
	case ProtocolFastCGI:
		if l.MaxConns == 0 {
			l.MaxConns = defaultMaxConns
		}
		if l.MaxRequests == 0 {
			l.MaxRequests = defaultMaxRequests
		}
		if l.MaxRequestsPerConn == 0 {
			l.MaxRequestsPerConn = 1
			if l.Multiplex {
				l.MaxRequestsPerConn = defaultMaxRequestsPerConnMux
			}
		}
	case ProtocolAJP:
		if l.PacketSize == 0 {
			l.PacketSize = defaultPacketSize
		}
	}
}

func (b *Backend) setDefaults() {
	b.Type = strings.ToLower(b.Type)
	if b.Timeout == 0 {
		b.Timeout = defaultBackendTimeout
	}
	if b.QueueTimeout == 0 {
		b.QueueTimeout = defaultQueueTimeout
	}
	// Only the keys of b's own type get defaults, so that Validate can
	// tell a key of another type that the file set.
	if b.Type == BackendCGI {
		if b.Root != "" && b.URLPrefix == "" {
			b.URLPrefix = "/" // the whole URL space maps onto root
		}
		if b.MaxConcurrent == 0 {
			b.MaxConcurrent = defaultMaxConcurrent
		}
		if b.MaxQueue == 0 {
			b.MaxQueue = b.MaxConcurrent // absorb one burst as big as the pool
		}
		b.setRunnerDefaults() // cgirunner.go
	}
	if (b.Type == BackendCGI || b.Type == BackendFastCGI) && b.MaxHeaderBytes == 0 {
		b.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if b.pool() {
		b.setPoolDefaults()
	}
	if len(b.SetEnv) > 0 {
		// The loader folds keys to lower case; environment names are
		// conventionally upper case.
		env := make(map[string]string, len(b.SetEnv))
		for k, v := range b.SetEnv {
			env[strings.ToUpper(k)] = v
		}
		b.SetEnv = env
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
