package app

import (
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/authorizer"
	"github.com/junction-gw/junction/backends/cgi"
	"github.com/junction-gw/junction/balancer"
	"github.com/junction-gw/junction/balancer/shadow"
	"github.com/junction-gw/junction/cmd/junction/internal/privdrop"
	"github.com/junction-gw/junction/config"
)

// generation is everything one configuration builds: the backends by
// name (cgi backends and pools) and the routes over them. Listeners hold
// a router built from the current generation; a reload builds the next
// one, reusing what did not change.
type generation struct {
	cfg      *config.Config
	loaded   time.Time // when it was built
	backends map[string]backends.Backend
	cgis     map[string]*cgiUnit
	pools    map[string]*poolUnit
	routes   []balancer.Route
	// shadows are the shadowed routes' backends, never shared with
	// another generation: closed when it is retired.
	shadows map[int]*shadow.Backend // by route index
	// authorizers guard routes (authorizers.go), by route index; closed
	// with the generation.
	authorizers map[int]*authorizer.Authorizer
	// cgiRoutes are the routes that override their cgi backend's
	// settings, by prefix (limits.go).
	cgiRoutes map[string]*cgiRoute
}

// cgiUnit is a cgi backend with the configuration it was built from.
type cgiUnit struct {
	cfg     config.Backend
	backend *cgi.Backend
}

// rolling is a kept spawned pool whose command or count changed.
type rolling struct {
	unit *poolUnit
	cfg  *config.Spawn
}

// buildGeneration builds cfg's backends. Units of prev whose
// configuration is unchanged are reused; spawned pools whose spawn section
// alone changed are reused and listed in roll; a static pool whose
// instance list alone changed is reused and its new list returned in
// replace. New pool units are not started.
func buildGeneration(cfg *config.Config, prev *generation, log *slog.Logger, o *ops) (g *generation, roll []rolling, replace map[*poolUnit][]config.Instance, err error) {
	g = &generation{cfg: cfg, loaded: time.Now(), backends: map[string]backends.Backend{},
		cgis: map[string]*cgiUnit{}, pools: map[string]*poolUnit{}}
	replace = map[*poolUnit][]config.Instance{}
	var errs []error
	for _, name := range sortedNames(cfg.Backends) {
		bc := cfg.Backends[name]
		switch bc.Type {
		case config.BackendCGI:
			if old := prev.cgi(name); old != nil && reflect.DeepEqual(old.cfg, *bc) {
				g.cgis[name] = old
				break
			}
			b, err := newCGI(name, bc, log, o)
			if err != nil {
				errs = append(errs, fmt.Errorf("app: backends.%s: %w", name, err))
				continue
			}
			g.cgis[name] = &cgiUnit{cfg: *bc, backend: b}
		case config.BackendHTTP, config.BackendFastCGI:
			if old := prev.pool(name); old != nil && old.compatible(bc) {
				g.pools[name] = old
				switch {
				case bc.Spawn != nil && !reflect.DeepEqual(*old.cfg.Spawn, *bc.Spawn):
					roll = append(roll, rolling{unit: old, cfg: bc.Spawn})
				case bc.Spawn == nil && !reflect.DeepEqual(old.cfg.Instances, bc.Instances):
					replace[old] = bc.Instances
				}
				break
			}
			u, err := newPoolUnit(name, bc, log, o.m.Pool(name), o.m.DiscoveryError(name))
			if err != nil {
				errs = append(errs, fmt.Errorf("app: backends.%s: %w", name, err))
				continue
			}
			g.pools[name] = u
		default:
			errs = append(errs, fmt.Errorf("app: backends.%s: backend type %q is not built into this junction", name, bc.Type))
		}
	}
	for name, c := range g.cgis {
		g.backends[name] = namedBackend{name: name, b: c.backend, timed: true}
	}
	for name, p := range g.pools {
		g.backends[name] = namedBackend{name: name, b: p.Pool()}
	}
	if err := joinErrs(errs); err != nil {
		g.stopNew(prev)
		return nil, nil, nil, err
	}
	g.routes = make([]balancer.Route, len(cfg.Routes))
	g.cgiRoutes = map[string]*cgiRoute{}
	g.shadows = map[int]*shadow.Backend{}
	g.authorizers = map[int]*authorizer.Authorizer{}
	for i, r := range cfg.Routes {
		b, err := g.routeBackend(prev, i, r) // limits.go: the backend, or its view with the route's settings
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s := r.Shadow; s != nil {
			// Inside the authorizer: denied requests are never copied.
			sb := shadow.New(shadow.Config{
				Route: r.Prefix, Primary: b, Shadow: g.backends[s.Backend], ShadowName: s.Backend,
				Percent: s.PercentOrDefault(), Methods: s.Methods, Compare: s.Compare,
				Queue: s.Queue, MaxBody: s.MaxBody, Timeout: s.Timeout,
				Logger: log, Observer: o.m.Shadow(r.Prefix), // its lines name the route
			})
			g.shadows[i] = sb
			b = sb
		}
		b, err = g.guard(i, r, b, log, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		g.routes[i] = balancer.Route{Prefix: r.Prefix, Backend: b}
	}
	if err := joinErrs(errs); err != nil {
		g.closeAuthorizers()
		g.closeShadows()
		g.stopNew(prev)
		return nil, nil, nil, err
	}
	return g, roll, replace, nil
}

// router returns the handler for one listener.
func (g *generation) router(lc config.Listener, log *slog.Logger) *balancer.Router {
	rt := &balancer.Router{Routes: g.routes, Logger: log}
	if lc.Backend != "" {
		rt.Default = g.backends[lc.Backend]
	}
	return rt
}

func (g *generation) cgi(name string) *cgiUnit {
	if g == nil {
		return nil
	}
	return g.cgis[name]
}

func (g *generation) pool(name string) *poolUnit {
	if g == nil {
		return nil
	}
	return g.pools[name]
}

// closeShadows stops the shadowed routes' workers; copies still queued
// are dropped. Requests still on g's routes are served, unshadowed.
func (g *generation) closeShadows() {
	for _, s := range g.shadows {
		s.Close()
	}
}

// closeRoutes stops what g's routes run beside the backends, for an App
// that will not serve: the shadow workers and the authorizers' kept
// connections.
func (g *generation) closeRoutes() {
	g.closeShadows()
	g.closeAuthorizers()
}

// stopNew stops g's pool units that prev does not have.
func (g *generation) stopNew(prev *generation) {
	for _, u := range g.unitsNotIn(prev) {
		u.Stop()
	}
}

// unitsNotIn returns g's pool units that other does not share.
func (g *generation) unitsNotIn(other *generation) []*poolUnit {
	var out []*poolUnit
	for _, name := range sortedNames(g.pools) {
		u := g.pools[name]
		if other == nil || !other.has(u) {
			out = append(out, u)
		}
	}
	return out
}

func (g *generation) has(u *poolUnit) bool {
	for _, x := range g.pools {
		if x == u {
			return true
		}
	}
	return false
}

// newCGI builds the named cgi backend from its configuration.
func newCGI(name string, b *config.Backend, log *slog.Logger, o *ops) (*cgi.Backend, error) {
	userName, groupName, err := scriptUser(b, o.cred)
	if err != nil {
		return nil, err
	}
	return cgi.New(cgi.Options{
		Name:           name,
		Root:           b.Root,
		URLPrefix:      b.URLPrefix,
		Script:         b.Script,
		Timeout:        b.Timeout,
		MaxConcurrent:  b.MaxConcurrent,
		MaxQueue:       b.MaxQueue,
		QueueTimeout:   b.QueueTimeout,
		PassEnv:        b.PassEnv,
		SetEnv:         b.SetEnv,
		User:           userName,
		Group:          groupName,
		MaxHeaderBytes: b.MaxHeaderBytes,
		MaxBodySpool:   int64(b.MaxBodySpool),
		SpoolDir:       b.SpoolDir,
		Limits:         cgiLimits(b.Limits), // limits.go
		Logger:         log,                 // the backend names itself (Name) in every line
		Observer:       o.m.CGIObserver(name),
		// interpreters, run_as owner, user_dir (config/cgirunner.go)
		Interpreters: interpreters(b.Interpreters),
		RunAsOwner:   b.RunAs == config.RunAsOwner,
		MinUID:       uint32(b.MinUID),
		MinGID:       uint32(b.MinGID),
		UserDir:      b.UserDir,
	})
}

// interpreters maps the configuration's commands to the cgi backend's.
func interpreters(m map[string]config.Command) map[string][]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string][]string, len(m))
	for ext, cmd := range m {
		out[ext] = cmd
	}
	return out
}

// scriptUser returns the user and group the cgi backend b runs scripts
// as. Once junction has dropped to cred it can start scripts only as cred
// itself: a backend asking for that identity runs scripts as junction
// (no switch needed), any other is refused with the reason.
func scriptUser(b *config.Backend, cred *privdrop.Credential) (userName, groupName string, err error) {
	if cred != nil && (b.RunAs != "" || b.UserDir != "") {
		return "", "", fmt.Errorf("run_as owner and user_dir: junction drops to %s after binding and could then not switch to each script's owner; "+
			"remove the top-level user", cred)
	}
	if cred == nil || (b.User == "" && b.Group == "") {
		return b.User, b.Group, nil
	}
	name := b.User
	if name == "" {
		name = cred.User
	}
	want, err := privdrop.Lookup(name, b.Group)
	if err != nil {
		return "", "", err
	}
	if want.UID == cred.UID && want.GID == cred.GID {
		return "", "", nil
	}
	return "", "", fmt.Errorf("user %q group %q: junction drops to %s after binding and can then start scripts only as that user; "+
		"remove this backend's user and group, or the top-level user", b.User, b.Group, cred)
}
