// Package spawn runs and supervises local application instances for a
// balancer pool: N copies of a command, each listening on its own loopback
// port, unix socket, or a socket passed on fd 0 (the spawn-fcgi
// convention for FastCGI apps).
//
// Every child runs in its own process group, which is signalled as a whole
// (TERM, then KILL after StopTimeout) so workers an app forks die with it;
// children also get SIGKILL when junction's thread that started them dies
// (Pdeathsig, Linux only). Crashed instances are restarted with
// exponential back-off. Output lines are logged with the instance.
//
// Addresses handed to OnChange are "127.0.0.1:PORT" for TCP and
// "unix:/path" for unix sockets; SplitAddr turns them into a network and
// address for net.Dial.
package spawn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/junction-gw/junction/internal/sockaddr"
)

// Modes for Options.Mode.
const (
	ModePort   = "port"   // a free 127.0.0.1 port per instance, in {port}
	ModeSocket = "socket" // a unix socket per instance, in {socket}
	ModeFD0    = "fd0"    // a listening loopback TCP socket passed as fd 0
)

// Options describe the instances to run.
type Options struct {
	// Command is the program and its arguments. In each argument "{port}",
	// "{socket}", "{addr}" and "{index}" are replaced per instance.
	Command []string
	// Count is the number of instances (at least 1).
	Count int
	// Mode is how an instance listens: "port" (default), "socket" or "fd0".
	Mode string
	// Dir is the children's working directory (default: junction's).
	Dir string
	// SocketDir holds the unix sockets in socket mode (default: a private
	// temporary directory removed when Run returns).
	SocketDir string
	// Env sets "NAME=value" entries in the children's environment.
	Env []string
	// PassEnv names variables of junction's own environment the children
	// inherit, besides PATH, LANG and TZ; no other variable is inherited.
	PassEnv []string
	// RestartBase is the delay before restarting a crashed instance
	// (default 100ms); it doubles with each crash in a row, up to
	// RestartMax (default 30s). An instance that stayed up for RestartMax
	// starts over at RestartBase.
	RestartBase, RestartMax time.Duration
	// StartTimeout bounds the wait for readiness (default 30s: JVMs and
	// PHP warm-ups are slow); an instance not ready by then is killed and
	// counts as a crash.
	StartTimeout time.Duration
	// Ready probes whether the instance at addr serves; it is called
	// repeatedly until it returns nil. Default: the address accepts a
	// connection.
	Ready func(ctx context.Context, addr string) error
	// StopTimeout is how long a stopped instance gets after SIGTERM before
	// SIGKILL (default 10s).
	StopTimeout time.Duration
	// Logger receives lifecycle events and the children's output lines.
	Logger *slog.Logger
	// OnChange is called with the addresses of the ready instances, in
	// instance order, whenever that set changes. Calls do not overlap.
	OnChange func(addrs []string)
	// WaitIdle, if set, is called during Rolling after an old instance
	// left the published set and before it is stopped, so in-flight
	// requests finish (e.g. balancer.Pool.WaitIdle). Its context ends
	// after StopTimeout.
	WaitIdle func(ctx context.Context, addr string) error
}

func (o *Options) prepare() error {
	var errs []error
	if len(o.Command) == 0 || o.Command[0] == "" {
		errs = append(errs, errors.New("command is empty"))
	}
	if o.Count < 1 {
		errs = append(errs, fmt.Errorf("count %d: want at least 1", o.Count))
	}
	switch o.Mode {
	case "":
		o.Mode = ModePort
	case ModePort, ModeSocket, ModeFD0:
	default:
		errs = append(errs, fmt.Errorf("mode %q: want port, socket or fd0", o.Mode))
	}
	if o.RestartBase < 0 || o.RestartMax < 0 || o.StartTimeout < 0 || o.StopTimeout < 0 {
		errs = append(errs, errors.New("negative duration"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spawn: %w", err)
	}
	if o.RestartBase == 0 {
		o.RestartBase = 100 * time.Millisecond
	}
	if o.RestartMax == 0 {
		o.RestartMax = 30 * time.Second
	}
	o.RestartMax = max(o.RestartMax, o.RestartBase)
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.Ready == nil {
		o.Ready = DialReady
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// SplitAddr returns the network and address to dial for an address from
// OnChange.
func SplitAddr(addr string) (network, address string) {
	if path, ok := sockaddr.UnixPath(addr); ok {
		return "unix", path
	}
	return "tcp", addr
}

// DialReady reports whether addr accepts a connection.
func DialReady(ctx context.Context, addr string) error {
	var d net.Dialer
	network, address := SplitAddr(addr)
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return err
	}
	return c.Close()
}

// Supervisor runs the instances.
type Supervisor struct {
	pubMu  sync.Mutex // serializes OnChange calls
	rollMu sync.Mutex // one Rolling at a time

	mu      sync.Mutex
	o       Options
	ctx     context.Context // Run's; nil when not running
	wg      sync.WaitGroup  // slot goroutines
	slots   []*slot         // published instances, by index
	gen     int             // generation, for unique socket names
	stopped bool            // Run is waiting for the slots to end
	sockDir string
}

// slot is one supervised instance position; fields below the line are
// guarded by Supervisor.mu.
type slot struct {
	index  int
	gen    int
	o      Options
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	first  chan error // the first start attempt's outcome
	once   sync.Once

	addr     string // "" while not ready
	pid      int
	restarts int
	lastExit string
}

// report delivers the first start attempt's outcome (nil: ready) once.
func (sl *slot) report(err error) { sl.once.Do(func() { sl.first <- err }) }

// New checks o and returns a supervisor; Run starts it.
func New(o Options) (*Supervisor, error) {
	if err := o.prepare(); err != nil {
		return nil, err
	}
	return &Supervisor{o: o}, nil
}

// Run starts Count instances, restarts crashed ones, and when ctx ends
// stops every process group and returns nil once all children are gone.
func (s *Supervisor) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ctx != nil {
		s.mu.Unlock()
		return errors.New("spawn: Run called twice")
	}
	s.ctx = ctx
	o := s.o
	if o.Mode == ModeSocket && o.SocketDir == "" {
		dir, err := os.MkdirTemp("", "junction-spawn-")
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("spawn: socket dir: %w", err)
		}
		s.sockDir = dir
		defer os.RemoveAll(dir)
	}
	for i := range o.Count {
		s.slots = append(s.slots, s.startSlotLocked(o, i))
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.stopped = true // no new slots from here on
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// startSlotLocked launches the supervising goroutine for instance index.
func (s *Supervisor) startSlotLocked(o Options, index int) *slot {
	s.gen++
	ctx, cancel := context.WithCancel(s.ctx)
	sl := &slot{index: index, gen: s.gen, o: o, cancel: cancel,
		done: make(chan struct{}), first: make(chan error, 1),
		log: o.Logger.With("instance", index, "gen", s.gen)}
	s.wg.Go(func() {
		defer close(sl.done)
		s.supervise(ctx, sl)
	})
	return sl
}

// Rolling replaces the instances one at a time with ones built from
// newOpts: start the new one, wait until it is ready, publish it in place
// of the old one, let the old one go idle (WaitIdle) and stop it. If a new
// instance fails to start, Rolling stops it and returns the error; the
// instances not yet replaced keep running. Run must be running.
func (s *Supervisor) Rolling(ctx context.Context, newOpts Options) error {
	if err := newOpts.prepare(); err != nil {
		return err
	}
	s.rollMu.Lock()
	defer s.rollMu.Unlock()
	s.mu.Lock()
	if s.ctx == nil || s.ctx.Err() != nil {
		s.mu.Unlock()
		return errors.New("spawn: Rolling needs a running supervisor")
	}
	oldCount := len(s.slots)
	s.mu.Unlock()
	for i := range max(oldCount, newOpts.Count) {
		var old *slot
		if i < oldCount {
			s.mu.Lock()
			old = s.slots[i]
			s.mu.Unlock()
		}
		if i < newOpts.Count {
			s.mu.Lock()
			if s.stopped {
				s.mu.Unlock()
				return errors.New("spawn: supervisor stopped during Rolling")
			}
			sl := s.startSlotLocked(newOpts, i)
			s.mu.Unlock()
			var err error
			select {
			case err = <-sl.first:
			case <-ctx.Done():
				err = ctx.Err()
			}
			if err != nil {
				sl.cancel()
				<-sl.done
				return fmt.Errorf("spawn: rolling instance %d: %w", i, err)
			}
			s.mu.Lock()
			if i < len(s.slots) {
				s.slots[i] = sl
			} else {
				s.slots = append(s.slots, sl)
			}
			s.mu.Unlock()
		} else {
			s.mu.Lock()
			s.slots = s.slots[:newOpts.Count]
			s.mu.Unlock()
		}
		s.publish()
		if old != nil {
			s.retire(old)
		}
	}
	s.mu.Lock()
	s.o = newOpts
	s.mu.Unlock()
	return nil
}

// retire lets old go idle, then stops it.
func (s *Supervisor) retire(old *slot) {
	s.mu.Lock()
	addr := old.addr
	s.mu.Unlock()
	if addr != "" && old.o.WaitIdle != nil {
		ctx, cancel := context.WithTimeout(s.ctx, old.o.StopTimeout)
		if err := old.o.WaitIdle(ctx, addr); err != nil {
			old.log.Warn("instance still busy when stopped", "addr", addr, "err", err)
		}
		cancel()
	}
	old.cancel()
	<-old.done
}

// publish calls OnChange with the ready addresses of the published slots.
func (s *Supervisor) publish() {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	s.mu.Lock()
	var addrs []string
	for _, sl := range s.slots {
		if sl.addr != "" {
			addrs = append(addrs, sl.addr)
		}
	}
	stopping := s.ctx.Err() != nil
	onChange := s.o.OnChange
	if len(s.slots) > 0 {
		onChange = s.slots[0].o.OnChange
	}
	s.mu.Unlock()
	if stopping || onChange == nil {
		return // shutting down: keep the last set rather than flap to empty
	}
	onChange(addrs)
}

// published reports whether sl is in the published set.
func (s *Supervisor) publishedLocked(sl *slot) bool {
	for _, x := range s.slots {
		if x == sl {
			return true
		}
	}
	return false
}

// Status describes one running instance.
type Status struct {
	Index    int
	Addr     string // "" while starting or restarting
	PID      int    // also the process group id; 0 when not running
	Restarts int
	LastExit string // how the previous process ended
}

// Snapshot returns the published instances' state.
func (s *Supervisor) Snapshot() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.slots))
	for _, sl := range s.slots {
		out = append(out, Status{Index: sl.index, Addr: sl.addr, PID: sl.pid, Restarts: sl.restarts, LastExit: sl.lastExit})
	}
	return out
}
