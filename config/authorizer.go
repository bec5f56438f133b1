package config

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Authorizer is a FastCGI application asked, in the FastCGI Authorizer
// role, whether each request of a route may proceed (as lighttpd's
// "mode" => "authorizer" and Apache's mod_authnz_fcgi do). A 200 answer
// lets the request through, with the answer's Variable-NAME headers added
// as variables; any other answer goes to the client as the authorizer
// gave it. See README.md, "Authorizer".
type Authorizer struct {
	// Instances are the authorizer application's addresses ("host:port"
	// or "unix:/path/to/socket"), e.g. a php-fpm pool. They are tried
	// round robin; one that cannot be reached is skipped for the next.
	// At least one is required.
	Instances []string `mapstructure:"instances"`
	// Script is the SCRIPT_FILENAME the authorizer runs, as the
	// application sees it (e.g. /srv/auth/check.php): absolute, not
	// resolved against the file's directory. Required.
	Script string `mapstructure:"script"`
	// DialTimeout bounds connecting to one instance. Default 5s.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// Timeout bounds the answer, from sending the request to its last
	// byte. An authorizer that has not answered by then fails the request
	// with 504. Default 10s.
	Timeout time.Duration `mapstructure:"timeout"`
	// KeepAlive is how many idle connections to each instance are kept
	// open for the next request. php-fpm gives every open connection a
	// worker, so keep it under the authorizer pool's pm.max_children.
	// Default 0: a connection per request.
	KeepAlive int `mapstructure:"keepalive"`
	// KeepAliveTimeout closes a kept connection idle that long. Default
	// 60s.
	KeepAliveTimeout time.Duration `mapstructure:"keepalive_timeout"`
}

// Authorizer defaults, each with its reason.
const (
	// An access check is a lookup, not a page: one that takes ten seconds
	// has failed, and the client is still waiting.
	defaultAuthorizerTimeout = 10 * time.Second
	// nginx's keepalive_timeout: long enough to carry a burst, short
	// enough not to pin php-fpm workers for long.
	defaultAuthorizerKeepAliveTimeout = 60 * time.Second
)

func (a *Authorizer) setDefaults() {
	if a.DialTimeout == 0 {
		a.DialTimeout = defaultDialTimeout // as for pools: a local instance answers a connect at once
	}
	if a.Timeout == 0 {
		a.Timeout = defaultAuthorizerTimeout
	}
	if a.KeepAliveTimeout == 0 {
		a.KeepAliveTimeout = defaultAuthorizerKeepAliveTimeout
	}
}

// resolvePaths makes relative unix instance sockets absolute against the
// configuration file's directory, as for pool instances.
func (a *Authorizer) resolvePaths(abs func(string) string) {
	for i, addr := range a.Instances {
		if p, ok := strings.CutPrefix(addr, "unix:"); ok && p != "" && !strings.HasPrefix(p, "@") {
			a.Instances[i] = "unix:" + abs(p)
		}
	}
}

func (a *Authorizer) validate(v *validator, key string) {
	if len(a.Instances) == 0 {
		v.add(key+".instances", "at least one address is required (host:port or unix:/path)")
	}
	seen := map[string]bool{}
	for i, addr := range a.Instances {
		k := fmt.Sprintf("%s.instances[%d]", key, i)
		if err := checkInstanceAddress(addr); err != nil {
			v.add(k, "%v", err)
		} else if seen[addr] {
			v.add(k, "%q is listed twice", addr)
		}
		seen[addr] = true
	}
	switch {
	case a.Script == "":
		v.add(key+".script", "required: the SCRIPT_FILENAME the authorizer runs, e.g. /srv/auth/check.php")
	case !strings.HasPrefix(a.Script, "/"):
		v.add(key+".script", "%q must be an absolute path (as the authorizer application sees it)", a.Script)
	case path.Clean(a.Script) != a.Script || strings.ContainsAny(a.Script, "\x00\r\n"):
		v.add(key+".script", "%q is not a clean path", a.Script)
	}
	v.positive(key+".dial_timeout", a.DialTimeout)
	v.positive(key+".timeout", a.Timeout)
	v.nonNegative(key+".keepalive", a.KeepAlive)
	v.positive(key+".keepalive_timeout", a.KeepAliveTimeout)
}
