package status

import (
	"time"

	"github.com/junction-gw/junction/backends/authorizer"
	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/balancer/shadow"
)

// Snapshot is everything the status page shows, as plain data. The
// composition root builds one per request from its listeners, router,
// pools and CGI backends.
type Snapshot struct {
	// Version is junction's version string.
	Version string `json:"version"`
	// Started is when the process started.
	Started time.Time `json:"started"`
	// Now is when the snapshot was taken; Handler fills it when zero.
	Now time.Time `json:"now"`
	// UptimeSeconds is Now - Started; Handler fills it.
	UptimeSeconds float64 `json:"uptime_seconds"`
	// ConfigVersion identifies the configuration in force (a hash, or
	// the reload count).
	ConfigVersion string `json:"config_version,omitempty"`
	// ConfigLoaded is when that configuration was loaded.
	ConfigLoaded time.Time `json:"config_loaded"`
	// ShuttingDown is true once a graceful stop began.
	ShuttingDown bool `json:"shutting_down"`

	Listeners []Listener `json:"listeners"`
	Routes    []Route    `json:"routes"`
	Pools     []Pool     `json:"pools"`
	CGI       []CGI      `json:"cgi"`
}

// Listener is one front-server listener.
type Listener struct {
	Name      string `json:"name"`
	Protocol  string `json:"protocol"` // scgi, fastcgi, ajp13, http
	Address   string `json:"address"`
	OpenConns int    `json:"open_connections"`
}

// Route maps a request pattern to a backend.
type Route struct {
	Pattern string `json:"pattern"`
	Backend string `json:"backend"`
	// Shadow is the route's shadow comparison, when it has one.
	Shadow *Shadow `json:"shadow,omitempty"`
	// Authorizer is the route's FastCGI Authorizer, when it has one.
	Authorizer *Authorizer `json:"authorizer,omitempty"`
	// CGI is the route's own settings for its cgi backend, when it sets
	// any.
	CGI *RouteCGI `json:"cgi,omitempty"`
}

// Authorizer is a route's FastCGI Authorizer: where it is asked, and what
// it decided since junction started (the counts of a route prefix carry
// on across reloads, as junction_authorizer_requests_total's do).
type Authorizer struct {
	Instances []string `json:"instances"`
	Script    string   `json:"script"`
	authorizer.Stats
}

// RouteCGI is what a route sets for itself on its cgi backend; a zero
// field is the backend's.
type RouteCGI struct {
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
	MaxConcurrent  int     `json:"max_concurrent,omitempty"`
	// Limits are the limits the route overrides, key by key.
	Limits *Limits `json:"limits,omitempty"`
}

// Limits are per-script resource limits; a zero field is not set.
type Limits struct {
	CPUSeconds    float64 `json:"cpu_seconds,omitempty"`
	MemoryBytes   int64   `json:"memory_bytes,omitempty"`
	Processes     int     `json:"processes,omitempty"`
	OpenFiles     int     `json:"open_files,omitempty"`
	FileSizeBytes int64   `json:"file_size_bytes,omitempty"`
	Nice          int     `json:"nice,omitempty"`
}

// Shadow is a shadowed route's results since its configuration was
// loaded.
type Shadow struct {
	shadow.Stats
	// MatchRate is the share of compared pairs that matched, 0 to 1, or
	// -1 before any pair was compared.
	MatchRate float64 `json:"match_rate"`
}

// Pool is a balanced backend and its instances.
type Pool struct {
	Name      string     `json:"name"`
	Policy    string     `json:"policy,omitempty"`
	Queue     int        `json:"queue"` // requests waiting for a free instance
	Instances []Instance `json:"instances"`
	// History is the pool's requests of the last 15 minutes.
	History *History `json:"history,omitempty"`
	// Source is where the instances come from: static, spawn, dns or srv.
	Source string `json:"source,omitempty"`
	// Discovery is the DNS lookup's state for dns and srv pools.
	Discovery *Discovery `json:"discovery,omitempty"`
}

// Discovery is a discovered pool's lookup: what is looked up where, when
// it last worked and how it last failed.
type Discovery struct {
	Name           string    `json:"name"`               // the looked-up name (host:port for dns)
	Resolver       string    `json:"resolver,omitempty"` // the DNS server; empty for the system's
	RefreshSeconds float64   `json:"refresh_seconds"`
	LastRefresh    time.Time `json:"last_refresh,omitzero"` // the last successful lookup
	Instances      int       `json:"instances"`             // in that answer
	Failing        bool      `json:"failing"`               // the latest lookup failed; the pool keeps the last good set
	LastError      string    `json:"last_error,omitempty"`
	LastErrorTime  time.Time `json:"last_error_time,omitzero"`
	// Pending are discovered instances not in the pool yet because their
	// first health check fails, with its error.
	Pending map[string]string `json:"pending,omitempty"`
}

// Instance states, from best to worst.
const (
	StateUp       = "up"
	StateBackup   = "backup"   // healthy, used when the primaries cannot serve
	StateDraining = "draining" // finishing its requests, gets no new ones
	StateEjected  = "ejected"  // passive health took it out for a while
	StateDown     = "down"     // active health checks fail
)

// Instance is one member of a pool.
type Instance struct {
	Name      string `json:"name"`
	State     string `json:"state"` // one of the State constants
	InFlight  int    `json:"in_flight"`
	Queue     int    `json:"queue,omitempty"`
	Ejections int64  `json:"ejections"`
	Requests  int64  `json:"requests"`
	Failures  int64  `json:"failures"`
	// Latency percentiles of recent requests, in seconds.
	P50 float64 `json:"p50_seconds"`
	P90 float64 `json:"p90_seconds"`
	P99 float64 `json:"p99_seconds"`
	// LastError is the most recent failure, and when it happened.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// Source is where the instance came from: static, dns or srv.
	Source string `json:"source,omitempty"`
	// MaxConns is the bound on its requests in flight in force (0:
	// none): the learned capacity with max_conns: auto, else the
	// configured max_conns or max_conns_fallback.
	MaxConns int `json:"max_conns"`
	// Capacity is what the instance said it serves at once (max_conns:
	// auto); 0 when it did not tell or was not asked. CapacitySource says
	// what answered, CapacityStatus says it in words (why unknown, which
	// fallback is used), CapacityError is the latest probe's failure.
	Capacity       int       `json:"capacity,omitempty"`
	CapacitySource string    `json:"capacity_source,omitempty"`
	CapacityStatus string    `json:"capacity_status,omitempty"`
	CapacityError  string    `json:"capacity_error,omitempty"`
	CapacityTime   time.Time `json:"capacity_time,omitzero"`
	// IdleWorkers is the idle worker count the instance reported (php-fpm's
	// status page), when it did.
	IdleWorkers *int `json:"idle_workers,omitempty"`
	// History is the instance's attempts of the last 15 minutes.
	History *History `json:"history,omitempty"`
}

// CGI is a CGI backend: a bounded number of concurrent scripts.
type CGI struct {
	Name     string `json:"name"`
	InUse    int    `json:"in_use"`
	Max      int    `json:"max"`
	Queue    int    `json:"queue"`
	Timeouts int64  `json:"timeouts"`
}

// FromPool converts a balancer pool's status for the page. Instances that
// were removed by a reload and still finish requests are listed as
// draining.
func FromPool(p balancer.PoolStatus) Pool {
	out := Pool{Name: p.Name, Policy: p.Policy, Queue: p.QueueLen, Instances: make([]Instance, 0, len(p.Instances)),
		History: historyOf(p.History)}
	for _, in := range p.Instances {
		st := StateUp
		switch {
		case in.Down:
			st = StateDown
		case in.Ejected:
			st = StateEjected
		case in.Draining || in.Removed:
			st = StateDraining
		case in.Backup:
			st = StateBackup
		}
		out.Instances = append(out.Instances, Instance{
			Name: in.Name, State: st, InFlight: in.InFlight,
			Ejections: in.Ejections, Requests: in.Requests, Failures: in.Failures,
			P50: in.P50.Seconds(), P90: in.P90.Seconds(), P99: in.P99.Seconds(),
			LastError: in.LastError, LastErrorTime: in.LastFailure,
			Source: in.Source, MaxConns: in.Limit, CapacityStatus: capacityText(in),
			CapacityError: in.CapacityError, CapacityTime: in.CapacityTime, IdleWorkers: idleWorkers(in),
			History: historyOf(in.History),
		})
		if in.AutoMaxConns {
			out.Instances[len(out.Instances)-1].Capacity = in.Capacity.Max
			out.Instances[len(out.Instances)-1].CapacitySource = in.Capacity.Source
		}
	}
	return out
}
