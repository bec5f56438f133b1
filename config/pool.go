package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/junction-gw/junction/balancer/discovery"
	"github.com/junction-gw/junction/internal/sockaddr"
)

// Instance is one application instance of an http or fastcgi pool. In
// the file it is either a string (the address) or an object.
type Instance struct {
	// Address is "host:port" or "unix:/path/to/socket". Required; unique
	// within the backend.
	Address string `mapstructure:"address"`
	// Weight is the instance's share for weighted_round_robin and
	// least_conn. Default 1.
	Weight int `mapstructure:"weight"`
	// MaxConns bounds this instance's requests in flight, or is "auto"
	// (fastcgi: see the backend's max_conns). Default: the backend's
	// max_conns.
	MaxConns Conns `mapstructure:"max_conns"`
	// Backup instances get requests only while no other instance is
	// available.
	Backup bool `mapstructure:"backup"`
	// Route is the instance's session route (a Tomcat jvmRoute): a
	// JSESSIONID cookie or ;jsessionid= path parameter "id.ROUTE" goes to
	// the instance whose route is ROUTE while it is available.
	Route string `mapstructure:"route"`
}

// Health configures how a pool notices failing instances. Passive
// ejection is always on (unless fail_threshold is negative); active checks
// run when interval, path or script is set.
type Health struct {
	// Path is what an active check GETs on an http instance; 2xx and 3xx
	// are healthy. Setting it turns active checks on. http only.
	Path string `mapstructure:"path"`
	// Script is the script (a path under root, like "/ping.php") an active
	// check runs on a fastcgi instance; 2xx and 3xx are healthy. Without
	// it, active checks ask the instance FCGI_GET_VALUES, which php-fpm
	// answers without running PHP. Setting it turns active checks on.
	// fastcgi only.
	Script string `mapstructure:"script"`
	// Interval between active checks. Default 10s when path or script is
	// set; otherwise 0, no active checks.
	Interval time.Duration `mapstructure:"interval"`
	// Timeout bounds one check. Default: interval, at most 5s.
	Timeout time.Duration `mapstructure:"timeout"`
	// Rise is the number of passing checks in a row that bring a down
	// instance back. Default 2.
	Rise int `mapstructure:"rise"`
	// Fall is the number of failing checks in a row that take an instance
	// down. Default 3.
	Fall int `mapstructure:"fall"`
	// FailThreshold is the number of failed requests in a row that eject
	// an instance (passive health). Default 3; -1 turns ejection off.
	FailThreshold int `mapstructure:"fail_threshold"`
	// EjectBase is how long the first ejection lasts; each further one
	// without a success in between doubles it, up to EjectMax. Default 1s.
	EjectBase time.Duration `mapstructure:"eject_base"`
	// EjectMax caps an ejection. Default 1m.
	EjectMax time.Duration `mapstructure:"eject_max"`
	// StatusPath is php-fpm's pm.status_path (e.g. "/status"): with
	// max_conns: auto, each instance's capacity is asked there (with
	// "?json") after every passing check, instead of with FCGI_GET_VALUES,
	// which php-fpm does not answer. Sent as SCRIPT_NAME as it is
	// (strip_prefix does not apply). Setting it turns active checks on.
	// fastcgi only, with max_conns: auto.
	StatusPath string `mapstructure:"status_path"`
}

// Discovery looks a pool's instances up in DNS every Refresh. Set one
// of DNS and SRV.
type Discovery struct {
	// DNS is "host:port": every A and AAAA address of host is an instance
	// on port, named "IP:port" (for hashing and sticky cookies).
	DNS string `mapstructure:"dns"`
	// SRV is a name whose SRV records list the instances (target, port,
	// weight), such as "_app._tcp.service.consul": the records of the
	// lowest priority are the primary instances, every other priority's
	// are backups; weights become instance weights. An instance is named
	// "target:port".
	SRV string `mapstructure:"srv"`
	// Resolver is the DNS server to ask, "host:port" (Consul's DNS
	// interface: "127.0.0.1:8600"). Default: the system's resolver
	// (/etc/resolv.conf).
	Resolver string `mapstructure:"resolver"`
	// Refresh is the pause between lookups. Go's resolver reports no TTLs,
	// so this decides how soon a change is followed. Default 5s.
	Refresh time.Duration `mapstructure:"refresh"`
}

// Spawn modes accepted in Spawn.Mode.
const (
	SpawnPort   = "port"
	SpawnSocket = "socket"
	SpawnFD0    = "fd0"
)

// Spawn describes instances junction runs itself.
type Spawn struct {
	// Command is the program and its arguments, e.g. ["/srv/app/bin/app",
	// "-listen", "127.0.0.1:{port}"]. In each argument {port}, {socket},
	// {addr} and {index} are replaced per instance. Required.
	Command []string `mapstructure:"command"`
	// Count is the number of instances. Default 1.
	Count int `mapstructure:"count"`
	// Mode is how an instance listens: port (a free 127.0.0.1 port, in
	// {port} and {addr}), socket (a unix socket, in {socket} and {addr})
	// or fd0 (junction binds a loopback socket and passes it as the
	// child's standard input, the spawn-fcgi convention). Default port.
	Mode string `mapstructure:"mode"`
	// Dir is the working directory of the instances. Default: junction's.
	Dir string `mapstructure:"dir"`
	// Env sets "NAME=value" entries in the instances' environment.
	Env []string `mapstructure:"env"`
	// PassEnv names variables of junction's own environment the instances
	// inherit. They always get PATH, LANG and TZ (where junction has them)
	// and nothing else of junction's environment, so junction's secrets and
	// its systemd socket stay with junction.
	PassEnv []string `mapstructure:"pass_env"`
	// RestartBase is the pause before a crashed instance is restarted; it
	// doubles with each crash in a row up to RestartMax. Default 100ms.
	RestartBase time.Duration `mapstructure:"restart_base"`
	// RestartMax caps the restart pause. Default 30s.
	RestartMax time.Duration `mapstructure:"restart_max"`
	// StartTimeout bounds the wait until a new instance answers (its
	// health check, or a connect). Default 30s: JVM and PHP warm-ups are
	// slow.
	StartTimeout time.Duration `mapstructure:"start_timeout"`
	// StopTimeout is how long a stopping instance gets after SIGTERM
	// before SIGKILL. Default 10s.
	StopTimeout time.Duration `mapstructure:"stop_timeout"`
}

// Pool defaults, each with its reason.
const (
	// A local instance answers a connect at once; one that takes seconds
	// is down or drowning, and another instance should be tried.
	defaultDialTimeout = 5 * time.Second
	// Absorbs a burst as large as a typical front server's worker count;
	// only used when max_conns bounds the instances.
	defaultQueueSize = 128
	// Frequent enough to notice a dead instance within half a minute
	// (fall 3), rare enough to cost the application nothing.
	defaultHealthInterval = 10 * time.Second
	// HAProxy's defaults: one lucky or unlucky check changes nothing.
	defaultRise, defaultFall = 2, 3
	// One stray error must not eject an instance; three in a row mean it
	// is broken.
	defaultFailThreshold = 3
	// A restarting application is usually back within a second; a dead one
	// is still probed once a minute.
	defaultEjectBase = time.Second
	defaultEjectMax  = time.Minute
	// Quick enough to hide a crash, slow enough not to spin on a broken
	// command; capped so a fixed instance comes back within half a minute.
	defaultRestartBase = 100 * time.Millisecond
	defaultRestartMax  = 30 * time.Second
	// Registries (Consul, Kubernetes endpoints) publish a change within
	// seconds; a lookup every 5s follows them and costs the DNS server
	// nothing.
	defaultDiscoveryRefresh = 5 * time.Second
	// JVM and PHP applications can take many seconds to warm up.
	defaultStartTimeout = 30 * time.Second
	// Lets an instance finish its requests after SIGTERM, as systemd's
	// default gives a service a while to stop.
	defaultStopTimeout = 10 * time.Second
)

// pool reports whether b is a pool type (http, fastcgi).
func (b *Backend) pool() bool { return b.Type == BackendHTTP || b.Type == BackendFastCGI }

// setPoolDefaults is setDefaults for the pool types.
func (b *Backend) setPoolDefaults() {
	b.Balance = strings.ToLower(b.Balance)
	if b.Balance == "" {
		b.Balance = "round_robin" // spreads evenly with no tuning
	}
	if b.DialTimeout == 0 {
		b.DialTimeout = defaultDialTimeout
	}
	if b.Type == BackendHTTP && b.ResponseHeaderTimeout == 0 {
		b.ResponseHeaderTimeout = b.Timeout // one knob for the common case
	}
	if b.QueueSize == 0 {
		b.QueueSize = defaultQueueSize
	}
	h := &b.Health
	if h.Interval == 0 && (h.Path != "" || h.Script != "" || h.StatusPath != "" || b.autoConns()) {
		h.Interval = defaultHealthInterval
	}
	if h.Timeout == 0 && h.Interval > 0 {
		h.Timeout = min(h.Interval, 5*time.Second) // a check ends before the next starts
	}
	if h.Rise == 0 {
		h.Rise = defaultRise
	}
	if h.Fall == 0 {
		h.Fall = defaultFall
	}
	if h.FailThreshold == 0 {
		h.FailThreshold = defaultFailThreshold
	}
	if h.EjectBase == 0 {
		h.EjectBase = defaultEjectBase
	}
	if h.EjectMax == 0 {
		h.EjectMax = defaultEjectMax
	}
	if d := b.Discovery; d != nil && d.Refresh == 0 {
		d.Refresh = defaultDiscoveryRefresh
	}
	if s := b.Spawn; s != nil {
		s.Mode = strings.ToLower(s.Mode)
		if s.Mode == "" {
			s.Mode = SpawnPort // needs nothing from the application but a flag
		}
		if s.Count == 0 {
			s.Count = 1
		}
		if s.RestartBase == 0 {
			s.RestartBase = defaultRestartBase
		}
		if s.RestartMax == 0 {
			s.RestartMax = defaultRestartMax
		}
		if s.StartTimeout == 0 {
			s.StartTimeout = defaultStartTimeout
		}
		if s.StopTimeout == 0 {
			s.StopTimeout = defaultStopTimeout
		}
	}
}

// resolvePoolPaths makes relative unix instance sockets and the spawn
// directory absolute against base. A fastcgi root is on the instance's
// side and must already be absolute.
func (b *Backend) resolvePoolPaths(abs func(string) string) {
	for i := range b.Instances {
		in := &b.Instances[i]
		if p, ok := strings.CutPrefix(in.Address, "unix:"); ok && p != "" && !strings.HasPrefix(p, "@") {
			in.Address = "unix:" + abs(p)
		}
	}
	if b.Spawn != nil {
		b.Spawn.Dir = abs(b.Spawn.Dir)
	}
}

// validatePool is validate for the pool types.
func (b *Backend) validatePool(v *validator, key string) {
	http := b.Type == BackendHTTP
	v.onlyFor(key, "type cgi", []setting{
		{"url_prefix", b.URLPrefix != ""}, {"script", b.Script != ""},
		{"max_concurrent", b.MaxConcurrent != 0}, {"max_queue", b.MaxQueue != 0},
		{"user", b.User != ""}, {"group", b.Group != ""}, {"allow_root", b.AllowRoot},
		{"max_body_spool", b.MaxBodySpool != 0}, {"spool_dir", b.SpoolDir != ""},
	})
	v.onlyFor(key, "type cgi", b.runnerSettings()) // cgirunner.go
	if http {
		v.onlyFor(key, "types cgi and fastcgi", []setting{
			{"root", b.Root != ""}, {"pass_env", len(b.PassEnv) > 0}, {"set_env", len(b.SetEnv) > 0},
			{"max_header_bytes", b.MaxHeaderBytes != 0},
		})
		v.onlyFor(key, "type fastcgi", []setting{
			{"index", b.Index != ""}, {"health.script", b.Health.Script != ""},
			{"keepalive", b.KeepAlive != 0}, {"keepalive_timeout", b.KeepAliveTimeout != 0},
		})
	} else {
		v.onlyFor(key, "type http", []setting{
			{"response_header_timeout", b.ResponseHeaderTimeout != 0}, {"health.path", b.Health.Path != ""},
		})
		switch {
		case b.Root == "":
			v.add(key+".root", "required for fastcgi: the document root on the instance's side")
		case !strings.HasPrefix(b.Root, "/"):
			v.add(key+".root", "%q must be an absolute path (it is on the instance's side)", b.Root)
		}
		if strings.ContainsAny(b.Index, "/\x00") || b.Index == "." || b.Index == ".." {
			v.add(key+".index", "%q must be a plain file name", b.Index)
		}
		if b.Health.Script != "" && !strings.HasPrefix(b.Health.Script, "/") {
			v.add(key+".health.script", "%q must start with /", b.Health.Script)
		}
		v.nonNegative(key+".max_header_bytes", b.MaxHeaderBytes)
		b.validateEnv(v, key)
		b.validateKeepAlive(v, key)
	}
	if b.Health.Path != "" && !strings.HasPrefix(b.Health.Path, "/") {
		v.add(key+".health.path", "%q must start with /", b.Health.Path)
	}
	if b.StripPrefix != "" && !strings.HasPrefix(b.StripPrefix, "/") {
		v.add(key+".strip_prefix", "%q must start with /", b.StripPrefix)
	}
	switch {
	case len(b.Instances) == 0 && b.Spawn == nil && b.Discovery == nil:
		v.add(key+".instances", "one of instances, spawn or discovery is required")
	case len(b.Instances) > 0 && b.Spawn != nil:
		v.add(key+".spawn", "set either instances or spawn, not both")
	}
	if b.Discovery != nil {
		if len(b.Instances) > 0 {
			v.add(key+".discovery", "set either instances or discovery, not both")
		}
		if b.Spawn != nil {
			v.add(key+".discovery", "set either spawn or discovery, not both")
		}
		b.Discovery.validate(v, key+".discovery")
	}
	seen := map[string]bool{}
	for i, in := range b.Instances {
		ik := fmt.Sprintf("%s.instances[%d]", key, i)
		if err := checkInstanceAddress(in.Address); err != nil {
			v.add(ik+".address", "%v", err)
		} else if seen[in.Address] {
			v.add(ik+".address", "%q is listed twice", in.Address)
		}
		seen[in.Address] = true
		v.nonNegative(ik+".weight", in.Weight)
	}
	if b.Spawn != nil {
		b.Spawn.validate(v, key+".spawn")
	}
	b.validateBalance(v, key)
	v.positive(key+".timeout", b.Timeout)
	v.positive(key+".queue_timeout", b.QueueTimeout)
	v.positive(key+".dial_timeout", b.DialTimeout)
	v.positive(key+".response_header_timeout", b.ResponseHeaderTimeout)
	v.nonNegative(key+".max_attempts", b.MaxAttempts)
	v.nonNegative(key+".queue_size", b.QueueSize)
	b.validateCapacity(v, key)
	h, hk := b.Health, key+".health"
	v.positive(hk+".interval", h.Interval)
	v.positive(hk+".timeout", h.Timeout)
	v.positive(hk+".eject_base", h.EjectBase)
	v.positive(hk+".eject_max", h.EjectMax)
	v.nonNegative(hk+".rise", h.Rise)
	v.nonNegative(hk+".fall", h.Fall)
	if h.FailThreshold < -1 {
		v.add(hk+".fail_threshold", "%d: want a count, or -1 to turn ejection off", h.FailThreshold)
	}
	if h.EjectMax > 0 && h.EjectMax < h.EjectBase {
		v.add(hk+".eject_max", "%v is less than eject_base %v", h.EjectMax, h.EjectBase)
	}
}

// validateKeepAlive checks a fastcgi pool's keepalive against its
// max_conns. php-fpm serves one connection per worker and a kept
// connection holds its worker while idle, so the connections open to an
// instance must stay within its workers: junction opens a connection only
// for a request in flight (at most max_conns) and reuses kept ones first,
// which keeps in-flight plus idle connections within max_conns.
func (b *Backend) validateKeepAlive(v *validator, key string) {
	v.conns(key+".keepalive", b.KeepAlive)
	v.positive(key+".keepalive_timeout", b.KeepAliveTimeout)
	if b.KeepAlive == 0 || b.KeepAlive < 0 && !b.KeepAlive.Auto() {
		return
	}
	for i, in := range b.Instances {
		if in.MaxConns == 0 && b.MaxConns == 0 {
			v.add(fmt.Sprintf("%s.instances[%d].max_conns", key, i),
				"required with keepalive: set it (or the backend's max_conns) to at most the instance's worker count (php-fpm: pm.max_children), or to auto")
			return
		}
	}
	if (b.Spawn != nil || b.Discovery != nil) && b.MaxConns == 0 {
		v.add(key+".max_conns", "required with keepalive: set it to at most an instance's worker count (php-fpm: pm.max_children), or to auto")
	}
	// With auto on either side, the bound on requests in flight bounds
	// the kept connections: there is nothing to compare here.
	if b.MaxConns > 0 && b.KeepAlive > b.MaxConns {
		v.add(key+".keepalive", "%d is more than max_conns %d: idle connections beyond the requests in flight are never used", b.KeepAlive, b.MaxConns)
	}
}

func (b *Backend) validateBalance(v *validator, key string) {
	switch b.Balance {
	case "round_robin", "weighted_round_robin", "least_conn", "random_two":
		if b.HashKey != "" {
			v.add(key+".hash_key", "applies to balance: hash only")
		}
	case "hash":
		if !validHashKey(b.HashKey) {
			v.add(key+".hash_key", "%q: want ip, header:Name or cookie:Name", b.HashKey)
		}
	default:
		v.add(key+".balance", "%q is not one of round_robin, weighted_round_robin, least_conn, random_two, hash", b.Balance)
	}
	if b.StickyCookie != "" && strings.ContainsAny(b.StickyCookie, " \t;,=\"") {
		v.add(key+".sticky_cookie", "%q is not a cookie name", b.StickyCookie)
	}
}

func validHashKey(k string) bool {
	if k == "ip" {
		return true
	}
	for _, p := range []string{"header:", "cookie:"} {
		if name, ok := strings.CutPrefix(k, p); ok {
			return name != ""
		}
	}
	return false
}

// checkInstanceAddress accepts "host:port" with a host, and "unix:/path".
func checkInstanceAddress(addr string) error {
	if _, err := sockaddr.ParseDial(addr); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "sockaddr: "))
	}
	return nil
}

func (d *Discovery) validate(v *validator, key string) {
	clean := func(err error) string { return strings.TrimPrefix(err.Error(), "discovery: ") }
	switch {
	case d.DNS == "" && d.SRV == "":
		v.add(key, "set dns (\"host:port\") or srv (a name with SRV records)")
	case d.DNS != "" && d.SRV != "":
		v.add(key+".srv", "set either dns or srv, not both")
	case d.DNS != "":
		if _, _, err := discovery.SplitDNS(d.DNS); err != nil {
			v.add(key+".dns", "%s", clean(err))
		}
	default:
		if err := discovery.CheckSRV(d.SRV); err != nil {
			v.add(key+".srv", "%s", clean(err))
		}
	}
	if d.Resolver != "" {
		if err := discovery.CheckServer(d.Resolver); err != nil {
			v.add(key+".resolver", "%s", clean(err))
		}
	}
	v.positive(key+".refresh", d.Refresh)
}

func (s *Spawn) validate(v *validator, key string) {
	if len(s.Command) == 0 || s.Command[0] == "" {
		v.add(key+".command", "required: the program and its arguments")
	}
	placeholder := map[string][]string{
		SpawnPort:   {"{port}", "{addr}"},
		SpawnSocket: {"{socket}", "{addr}"},
	}
	switch s.Mode {
	case SpawnPort, SpawnSocket:
		found := false
		for _, a := range s.Command {
			for _, ph := range placeholder[s.Mode] {
				found = found || strings.Contains(a, ph)
			}
		}
		if !found && len(s.Command) > 0 {
			v.add(key+".command", "mode %s needs %s in an argument, so the instance knows where to listen",
				s.Mode, strings.Join(placeholder[s.Mode], " or "))
		}
	case SpawnFD0:
	default:
		v.add(key+".mode", "%q is not one of port, socket, fd0", s.Mode)
	}
	if s.Count < 1 {
		v.add(key+".count", "%d: want at least 1", s.Count)
	}
	for i, e := range s.Env {
		if name, _, ok := strings.Cut(e, "="); !ok || !envName(name) {
			v.add(fmt.Sprintf("%s.env[%d]", key, i), "%q is not NAME=value", e)
		}
	}
	for i, name := range s.PassEnv {
		if !envName(name) {
			v.add(fmt.Sprintf("%s.pass_env[%d]", key, i), "%q is not an environment variable name", name)
		}
	}
	v.positive(key+".restart_base", s.RestartBase)
	v.positive(key+".restart_max", s.RestartMax)
	v.positive(key+".start_timeout", s.StartTimeout)
	v.positive(key+".stop_timeout", s.StopTimeout)
}

// validateEnv checks pass_env and set_env names.
func (b *Backend) validateEnv(v *validator, key string) {
	for i, name := range b.PassEnv {
		if !envName(name) {
			v.add(fmt.Sprintf("%s.pass_env[%d]", key, i), "%q is not an environment variable name", name)
		}
	}
	for _, name := range sortedKeys(b.SetEnv) {
		if !envName(name) {
			v.add(key+".set_env."+name, "not an environment variable name")
		}
	}
}

// rejectPoolKeys reports pool keys set on a cgi backend.
func (b *Backend) rejectPoolKeys(v *validator, key string) {
	v.onlyFor(key, "types http and fastcgi", []setting{
		{"instances", len(b.Instances) > 0}, {"spawn", b.Spawn != nil}, {"discovery", b.Discovery != nil},
		{"balance", b.Balance != ""},
		{"hash_key", b.HashKey != ""}, {"sticky_cookie", b.StickyCookie != ""},
		{"max_attempts", b.MaxAttempts != 0}, {"queue_size", b.QueueSize != 0},
		{"max_conns", b.MaxConns != 0}, {"max_conns_fallback", b.MaxConnsFallback != 0}, {"health", b.Health != Health{}},
		{"dial_timeout", b.DialTimeout != 0}, {"strip_prefix", b.StripPrefix != ""},
	})
	v.onlyFor(key, "type http", []setting{{"response_header_timeout", b.ResponseHeaderTimeout != 0}})
	v.onlyFor(key, "type fastcgi", []setting{{"index", b.Index != ""}})
}

// instanceHook decodes an instance given as a plain address string.
func instanceHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[Instance]() || from.Kind() != reflect.String {
		return data, nil
	}
	return map[string]any{"address": data}, nil
}

// version returns the short hash that identifies a configuration file.
func version(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:6])
}
