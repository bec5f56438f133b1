// Package discovery finds a pool's instances in DNS, as HAProxy's
// server-template with resolvers and Caddy's dynamic upstreams do: the A
// and AAAA records of a name with a fixed port, or the SRV records of a
// name (RFC 2782: targets, ports, priorities, weights), looked up again
// every refresh interval.
//
// A Watcher runs off the request path: Run looks the name up, and when the
// answer differs from what it last applied it hands the new set to its
// Apply function (the pool's owner builds backends and swaps the pool's
// instance set there). A failed lookup keeps the last good set; it is
// logged once per change of state and counted by Options.OnError.
//
// Instance names are what every junction that reads the same records
// agrees on, so the hash policy and sticky cookies map a key the same way
// in each: "IP:port" for dns (IPv6 in brackets), "target:port" for srv
// with the target's final dot removed. One socket is one instance: A
// records repeated, or SRV targets that share an address and port, make
// one.
//
// Go's resolver reports no TTLs, so the refresh interval, not the records'
// TTL, decides how soon a change is seen.
package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kinds of lookup.
const (
	KindDNS = "dns" // A/AAAA records, port given
	KindSRV = "srv" // SRV records
)

// Defaults, each with its reason.
const (
	// Consul's and CoreDNS's answers change within seconds of a
	// registration; a lookup every 5 s costs the DNS server nothing.
	DefaultRefresh = 5 * time.Second
	// The Go resolver waits 5 s per server by default; a lookup must end
	// well before the next one so a dead resolver does not stall updates
	// for long.
	DefaultTimeout = 5 * time.Second
)

// Instance is one discovered instance.
type Instance struct {
	// Name is the instance's portable name: "IP:port" (dns) or
	// "target:port" (srv). Hashing and sticky cookies use it.
	Name string
	// Addr is the "IP:port" to connect to.
	Addr string
	// Weight is the SRV record's weight (at least 1); 1 for dns.
	Weight int
	// Backup is set for SRV records whose priority is above the lowest
	// one in the answer: they get requests only while no primary can.
	Backup bool
}

// Resolver is the part of *net.Resolver a Watcher uses.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// Options configure a Watcher. Exactly one of DNS and SRV is set.
type Options struct {
	// DNS is "host:port": every A/AAAA address of host is an instance on
	// port.
	DNS string
	// SRV is the name whose SRV records list the instances, such as
	// "_app._tcp.service.consul" or a Kubernetes headless Service's
	// "_http._tcp.app.ns.svc.cluster.local".
	SRV string
	// Server is the DNS server's "host:port" (Consul's DNS interface is
	// "127.0.0.1:8600"); empty uses the system's resolver configuration.
	Server string
	// Resolver, when set, replaces the resolver Server describes (tests).
	Resolver Resolver
	// Refresh is the pause between lookups (default DefaultRefresh).
	Refresh time.Duration
	// Timeout bounds one lookup (default DefaultTimeout, at most Refresh
	// when that is longer than a second).
	Timeout time.Duration
	// Apply is given each set that differs from the last one applied,
	// sorted by name, from Run's goroutine. It returns false when it could
	// not use all of it yet (an instance failed its first health check):
	// the next refresh then applies the set again, changed or not.
	Apply func(ctx context.Context, set []Instance) bool
	// OnError is called for every failed lookup (metrics).
	OnError func(error)
	// Logger receives lookup failures and recoveries; nil discards them.
	Logger *slog.Logger
}

// Status is a Watcher's state for the status page.
type Status struct {
	Kind        string        // KindDNS or KindSRV
	Name        string        // the looked-up name (with its port for dns)
	Server      string        // the DNS server; empty for the system's
	Refresh     time.Duration // the pause between lookups
	LastRefresh time.Time     // the last successful lookup; zero before one
	Instances   int           // instances in the last successful answer
	LastError   string        // the last failed lookup's error
	LastErrorAt time.Time     // when it failed
	Failing     bool          // the latest lookup failed
}

// Watcher looks a name up periodically and applies the changes.
type Watcher struct {
	o    Options
	kind string
	name string
	host string // dns: the host part
	port uint16 // dns: the port
	r    Resolver
	log  *slog.Logger

	ready     chan struct{} // closed after the first lookup, good or not
	readyOnce sync.Once

	mu         sync.Mutex
	st         Status
	failKind   string     // errorKind of the failed lookup logged last
	targetKind string     // SRV targets that did not resolve, as logged last
	applied    []Instance // last set passed to Apply
	complete   bool       // Apply took all of it
	byTarget   map[string]netip.Addr
}

// New checks o and returns a Watcher; nothing runs until Run.
func New(o Options) (*Watcher, error) {
	w := &Watcher{o: o, log: o.Logger, r: o.Resolver, ready: make(chan struct{})}
	switch {
	case o.DNS != "" && o.SRV != "":
		return nil, errors.New("discovery: set dns or srv, not both")
	case o.DNS != "":
		host, port, err := SplitDNS(o.DNS)
		if err != nil {
			return nil, err
		}
		w.kind, w.name, w.host, w.port = KindDNS, o.DNS, host, port
	case o.SRV != "":
		if err := CheckSRV(o.SRV); err != nil {
			return nil, err
		}
		w.kind, w.name = KindSRV, o.SRV
	default:
		return nil, errors.New("discovery: one of dns and srv is required")
	}
	if o.Apply == nil {
		return nil, errors.New("discovery: Apply is required")
	}
	if o.Refresh < 0 || o.Timeout < 0 {
		return nil, errors.New("discovery: negative refresh or timeout")
	}
	if w.o.Refresh == 0 {
		w.o.Refresh = DefaultRefresh
	}
	if w.o.Timeout == 0 {
		w.o.Timeout = DefaultTimeout
		if w.o.Refresh > time.Second {
			w.o.Timeout = min(w.o.Timeout, w.o.Refresh)
		}
	}
	if w.r == nil {
		if o.Server != "" {
			if err := CheckServer(o.Server); err != nil {
				return nil, err
			}
		}
		w.r = NewResolver(o.Server)
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.st = Status{Kind: w.kind, Name: w.name, Server: o.Server, Refresh: w.o.Refresh}
	return w, nil
}

// NewResolver returns a resolver that asks server ("host:port", over the
// network Go's resolver chooses: UDP, TCP for truncated answers), or the
// system's resolver when server is empty.
func NewResolver(server string) *net.Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{
		PreferGo: true, // only Go's own resolver takes a Dial
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
}

// SplitDNS parses a dns source, "host:port", with a numeric port.
func SplitDNS(s string) (host string, port uint16, err error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("discovery: dns %q: want host:port: %w", s, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("discovery: dns %q: port %q is not a number from 1 to 65535", s, p)
	}
	if err := checkName(h); err != nil {
		return "", 0, fmt.Errorf("discovery: dns %q: %w", s, err)
	}
	return h, uint16(n), nil
}

// CheckSRV checks an srv source: a DNS name without a port.
func CheckSRV(s string) error {
	if strings.Contains(s, ":") {
		return fmt.Errorf("discovery: srv %q: want a name without a port (the records carry the ports)", s)
	}
	if err := checkName(s); err != nil {
		return fmt.Errorf("discovery: srv %q: %w", s, err)
	}
	return nil
}

// CheckServer checks a resolver address: "host:port".
func CheckServer(s string) error {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("discovery: resolver %q: want host:port, such as 127.0.0.1:8600: %w", s, err)
	}
	if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("discovery: resolver %q: port %q is not a number from 1 to 65535", s, p)
	}
	if h == "" {
		return fmt.Errorf("discovery: resolver %q: no host", s)
	}
	return nil
}

// checkName accepts what a DNS name may be: labels of at most 63 bytes
// without spaces or control characters, at most 253 bytes in all. (An IP
// literal passes too: it resolves to itself.)
func checkName(s string) error {
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 253 {
		return errors.New("name longer than 253 bytes")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("label %q: empty or longer than 63 bytes", label)
		}
		for _, c := range []byte(label) {
			if c <= ' ' || c == 0x7f || strings.IndexByte(`/\"'@;,()[]{}<>`, c) >= 0 {
				return fmt.Errorf("label %q: %q is not allowed in a name", label, c)
			}
		}
	}
	return nil
}

// Status returns the watcher's state.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}

// Ready is closed once the first lookup ended and its answer, if any, was
// applied.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Run looks the name up now and then every Refresh until ctx ends (then
// it returns nil). Apply is only ever called from here.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.readyOnce.Do(func() { close(w.ready) })
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		w.refresh(ctx)
		w.readyOnce.Do(func() { close(w.ready) })
		t.Reset(w.o.Refresh)
	}
}

// refresh does one lookup and applies its answer. A failed lookup leaves
// the applied set as it was.
func (w *Watcher) refresh(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	set, err := w.Lookup(lctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: a cancelled lookup says nothing
	}
	now := time.Now()
	w.mu.Lock()
	if err != nil {
		kind := errorKind(err)
		changed := !w.st.Failing || w.failKind != kind
		w.st.Failing, w.st.LastError, w.st.LastErrorAt = true, err.Error(), now
		w.failKind = kind
		w.mu.Unlock()
		if w.o.OnError != nil {
			w.o.OnError(err)
		}
		if changed {
			w.log.Warn("discovery lookup failed; keeping the instances", "source", w.kind, "name", w.name, "err", err)
		}
		return
	}
	recovered := w.st.Failing
	w.st.Failing, w.st.LastRefresh, w.st.Instances = false, now, len(set)
	same := w.complete && slices.Equal(set, w.applied)
	w.mu.Unlock()
	if recovered {
		w.log.Info("discovery lookup works again", "source", w.kind, "name", w.name, "instances", len(set))
	}
	if same {
		return
	}
	complete := w.o.Apply(ctx, set)
	w.mu.Lock()
	w.applied, w.complete = set, complete
	w.mu.Unlock()
}

// Lookup asks DNS once and returns the instances sorted by name. An
// answer without instances is an error: a registry that briefly lists
// nothing must not empty the pool.
func (w *Watcher) Lookup(ctx context.Context) ([]Instance, error) {
	var set []Instance
	var err error
	if w.kind == KindDNS {
		set, err = w.lookupDNS(ctx)
	} else {
		set, err = w.lookupSRV(ctx)
	}
	if err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("discovery: %s %s: no instances in the answer", w.kind, w.name)
	}
	slices.SortFunc(set, func(a, b Instance) int { return cmp.Compare(a.Name, b.Name) })
	return set, nil
}

func (w *Watcher) lookupDNS(ctx context.Context) ([]Instance, error) {
	addrs, err := w.r.LookupNetIP(ctx, "ip", w.host)
	if err != nil {
		return nil, fmt.Errorf("discovery: dns %s: %w", w.name, w.serverErr(err))
	}
	seen := map[netip.Addr]bool{}
	var set []Instance
	for _, a := range addrs {
		a = a.Unmap()
		if seen[a] {
			continue
		}
		seen[a] = true
		addr := netip.AddrPortFrom(a.WithZone(""), w.port).String()
		set = append(set, Instance{Name: addr, Addr: addr, Weight: 1})
	}
	return set, nil
}

func (w *Watcher) lookupSRV(ctx context.Context) ([]Instance, error) {
	_, recs, err := w.r.LookupSRV(ctx, "", "", w.o.SRV)
	if err != nil {
		return nil, fmt.Errorf("discovery: srv %s: %w", w.o.SRV, w.serverErr(err))
	}
	usable := func(r *net.SRV) bool {
		return strings.TrimSuffix(r.Target, ".") != "" && r.Port != 0 // "." is RFC 2782's "not available here"
	}
	lowest, found := uint16(0), false
	for _, r := range recs {
		if usable(r) && (!found || r.Priority < lowest) {
			lowest, found = r.Priority, true
		}
	}
	if !found {
		return nil, nil
	}
	// A target that fails to resolve keeps its last address, if it had
	// one: one flaky name must not drop an instance that works.
	w.mu.Lock()
	prev := w.byTarget
	w.mu.Unlock()
	var targets []string
	for _, r := range recs {
		if usable(r) {
			targets = append(targets, strings.TrimSuffix(r.Target, "."))
		}
	}
	slices.Sort(targets) // the failures in one order, for the log's state
	targets = slices.Compact(targets)
	ips, lookupErrs := w.resolveTargets(ctx, targets)
	next := map[string]netip.Addr{}
	var errs []error
	var failed []string // targets that did not resolve, for the log's state
	for i, target := range targets {
		if err := lookupErrs[i]; err != nil {
			failed = append(failed, target+" "+errorKind(err))
			ip, ok := prev[target]
			if !ok {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, fmt.Errorf("%w (keeping %s)", err, ip))
			ips[i] = ip
		}
		next[target] = ips[i]
	}
	byName := map[string]int{}
	var set []Instance
	for _, r := range recs {
		if !usable(r) {
			continue
		}
		target := strings.TrimSuffix(r.Target, ".")
		ip, ok := next[target]
		if !ok {
			continue
		}
		in := Instance{
			Name:   net.JoinHostPort(target, strconv.Itoa(int(r.Port))),
			Addr:   netip.AddrPortFrom(ip, r.Port).String(),
			Weight: max(int(r.Weight), 1),
			Backup: r.Priority > lowest,
		}
		if i, dup := byName[in.Name]; dup {
			// The same target and port twice: at two priorities, the
			// better one; at one, the larger weight, whatever order the
			// resolver shuffled the records into.
			if cur := set[i]; cur.Backup && !in.Backup || cur.Backup == in.Backup && in.Weight > cur.Weight {
				set[i] = in
			}
			continue
		}
		byName[in.Name] = len(set)
		set = append(set, in)
	}
	w.mu.Lock()
	w.byTarget = next
	if len(errs) == 0 {
		w.targetKind = ""
	}
	w.mu.Unlock()
	if len(errs) > 0 {
		if len(set) == 0 {
			return nil, fmt.Errorf("discovery: srv %s: %w", w.o.SRV, errors.Join(errs...))
		}
		w.targetErrors(errors.Join(errs...), strings.Join(failed, ", "))
	}
	return oneByAddr(set), nil
}

// oneByAddr keeps one instance per address. Targets that resolve to the
// same address and port (two names for one host) are one socket, and two
// pool members on it would double its bound (max_conns, the capacity it
// reports). The one kept is a primary if there is one, then the smallest
// name, so every junction keeps the same; it gets the largest weight of
// its priority.
func oneByAddr(set []Instance) []Instance {
	slices.SortFunc(set, func(a, b Instance) int {
		if a.Backup != b.Backup {
			if a.Backup {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	at := make(map[string]int, len(set))
	out := set[:0]
	for _, in := range set {
		if i, dup := at[in.Addr]; dup {
			if out[i].Backup == in.Backup {
				out[i].Weight = max(out[i].Weight, in.Weight)
			}
			continue
		}
		at[in.Addr] = len(out)
		out = append(out, in)
	}
	return out
}

// errorKind is what makes two failed lookups the same failure for the
// log: the resolver's messages carry the query's ephemeral source port
// ("read udp 127.0.0.1:39103->127.0.0.1:53: ... connection refused"),
// which changes with every lookup.
func errorKind(err error) string {
	var de *net.DNSError
	if !errors.As(err, &de) {
		return err.Error()
	}
	switch {
	case de.IsNotFound:
		return "not found"
	case de.IsTimeout:
		return "timeout"
	}
	msg := de.Err
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// serverErr names the configured DNS server in a *net.DNSError: Go's
// resolver reports the server of /etc/resolv.conf even when a custom Dial
// sent the query elsewhere.
func (w *Watcher) serverErr(err error) error {
	var de *net.DNSError
	if w.o.Server != "" && errors.As(err, &de) {
		c := *de
		c.Server = w.o.Server
		return &c
	}
	return err
}

// maxTargetLookups bounds the SRV targets looked up at once: an answer
// may list hundreds, and one after another they would not fit in the
// lookup's timeout against a resolver some milliseconds away.
const maxTargetLookups = 16

// resolveTargets looks targets up concurrently (resolveTarget), and
// returns each one's address or error, in targets' order.
func (w *Watcher) resolveTargets(ctx context.Context, targets []string) ([]netip.Addr, []error) {
	ips, errs := make([]netip.Addr, len(targets)), make([]error, len(targets))
	sem := make(chan struct{}, maxTargetLookups)
	var wg sync.WaitGroup
	for i, target := range targets {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ips[i], errs[i] = w.resolveTarget(ctx, target)
		})
	}
	wg.Wait()
	return ips, errs
}

// resolveTarget returns a target's address: the first of its A records,
// else of its AAAA records, in address order, so every junction picks the
// same one. A target is a full name (RFC 2782), so one of several labels
// is looked up rooted: the resolver's search list (a Kubernetes pod's
// "ndots:5") must not make it another name first, such as one a wildcard
// record answers. A single-label target is looked up as it is: such a
// name is local, and Go's resolver finds it in /etc/hosts only without
// the dot.
func (w *Watcher) resolveTarget(ctx context.Context, target string) (netip.Addr, error) {
	name := target
	if strings.Contains(target, ".") {
		name += "."
	}
	addrs, err := w.r.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("target %s: %w", target, w.serverErr(err))
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("target %s: no address", target)
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap().WithZone("")
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) }) // IPv4 sorts first
	return addrs[0], nil
}

// targetErrors records SRV targets that did not resolve in an answer that
// is otherwise used: shown as the last error and counted, but not a
// failed lookup.
func (w *Watcher) targetErrors(err error, kind string) {
	w.mu.Lock()
	changed := w.targetKind != kind
	w.st.LastError, w.st.LastErrorAt, w.targetKind = err.Error(), time.Now(), kind
	w.mu.Unlock()
	if w.o.OnError != nil {
		w.o.OnError(err)
	}
	if changed {
		w.log.Warn("discovery: some SRV targets did not resolve", "name", w.name, "err", err)
	}
}
