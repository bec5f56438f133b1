package spawn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errStable means an instance exited after serving for at least RestartMax.
var errStable = errors.New("spawn: instance exited after a stable run")

// readyPoll is the pause between readiness probes.
const readyPoll = 25 * time.Millisecond

// supervise runs sl's process until ctx ends, restarting it after crashes.
func (s *Supervisor) supervise(ctx context.Context, sl *slot) {
	crashes := 0
	for {
		err := s.runOnce(ctx, sl)
		if err == nil && ctx.Err() == nil {
			err = errors.New("spawn: instance exited")
		}
		sl.report(err) // no-op once it was ready

		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errStable) {
			crashes = 0 // it had been up for a while: start the back-off over
		}
		delay := sl.o.RestartBase
		for i := 0; i < crashes && delay < sl.o.RestartMax; i++ {
			delay *= 2
		}
		delay = min(delay, sl.o.RestartMax)
		crashes++
		s.mu.Lock()
		sl.restarts++
		s.mu.Unlock()
		sl.log.Warn("instance ended, restarting", "in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// runOnce starts one process, waits until it is ready, publishes it, and
// returns when it exits (or ctx ends, after stopping it). The error says
// why a process never got ready, or how it ended.
func (s *Supervisor) runOnce(ctx context.Context, sl *slot) error {
	p, err := s.start(sl)
	if err != nil {
		return err
	}
	s.mu.Lock()
	sl.pid = p.pid
	s.mu.Unlock()
	defer func() {
		if network, path := SplitAddr(p.addr); network == "unix" {
			// The app may leave its socket behind; don't let them pile up.
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				sl.log.Warn("removing socket", "err", err)
			}
		}
		s.mu.Lock()
		sl.pid = 0
		sl.lastExit = p.exitStatus()
		s.mu.Unlock()
	}()
	if err := waitReady(ctx, sl.o, p); err != nil {
		p.stop(sl.o.StopTimeout)
		return err
	}
	sl.log.Info("instance ready", "addr", p.addr, "pid", p.pid)
	ready := time.Now()
	s.setAddr(sl, p.addr)
	sl.report(nil)
	select {
	case <-p.done:
		s.setAddr(sl, "")
		p.stop(sl.o.StopTimeout) // the rest of the group
		if time.Since(ready) >= sl.o.RestartMax {
			return errStable
		}
		if err := p.waitErr; err != nil {
			return fmt.Errorf("spawn: instance exited: %w", err)
		}
		return errors.New("spawn: instance exited")
	case <-ctx.Done():
		s.setAddr(sl, "")
		p.stop(sl.o.StopTimeout)
		return nil
	}
}

// setAddr records sl's address and publishes it if sl is published.
func (s *Supervisor) setAddr(sl *slot, addr string) {
	s.mu.Lock()
	changed := sl.addr != addr
	sl.addr = addr
	pub := s.publishedLocked(sl)
	s.mu.Unlock()
	if changed && pub { // a rolling replacement is published by Rolling
		s.publish()
	}
}

// waitReady probes p until Ready passes, the process exits, or
// StartTimeout passes.
func waitReady(ctx context.Context, o Options, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()
	for {
		err := o.Ready(ctx, p.addr)
		if err == nil {
			return nil
		}
		t := time.NewTimer(readyPoll)
		select {
		case <-p.done:
			t.Stop()
			return fmt.Errorf("spawn: exited before ready (%s): %w", p.exitStatus(), err)
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("spawn: not ready after %v: %w", o.StartTimeout, err)
		case <-t.C:
		}
	}
}

// proc is one running child and its process group.
type proc struct {
	pid     int
	addr    string
	done    chan struct{} // closed when the leader was reaped
	waitErr error         // set before done closes
	readers sync.WaitGroup
	pipes   []*os.File
}

func (p *proc) exitStatus() string {
	select {
	case <-p.done:
		if p.waitErr != nil {
			return p.waitErr.Error()
		}
		return "exit status 0"
	default:
		return "running"
	}
}

// listen prepares the address (and for fd0 the socket) for sl.
func (s *Supervisor) listen(sl *slot) (addr string, fd0 *os.File, err error) {
	switch sl.o.Mode {
	case ModeSocket:
		dir := sl.o.SocketDir
		if dir == "" {
			s.mu.Lock()
			dir = s.sockDir
			s.mu.Unlock()
		}
		path := filepath.Join(dir, fmt.Sprintf("app-%d-%d.sock", sl.gen, sl.index))
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", nil, fmt.Errorf("spawn: stale socket: %w", err)
		}
		return "unix:" + path, nil, nil
	case ModeFD0:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, fmt.Errorf("spawn: listen: %w", err)
		}
		defer l.Close() // the child keeps its own copy
		f, err := l.(*net.TCPListener).File()
		if err != nil {
			return "", nil, fmt.Errorf("spawn: listener file: %w", err)
		}
		return l.Addr().String(), f, nil
	default:
		// The port is free now; the child binds it a moment later. Another
		// process could take it in between: the child then fails to start
		// and is restarted on a new port.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, fmt.Errorf("spawn: free port: %w", err)
		}
		addr := l.Addr().String()
		if err := l.Close(); err != nil {
			return "", nil, fmt.Errorf("spawn: free port: %w", err)
		}
		return addr, nil, nil
	}
}

// expand fills the placeholders of one argument.
func expand(arg, addr string, index int) string {
	_, port, _ := net.SplitHostPort(addr)
	_, path := SplitAddr(addr)
	return strings.NewReplacer(
		"{port}", port,
		"{socket}", strings.TrimPrefix(path, "unix:"),
		"{addr}", addr,
		"{index}", strconv.Itoa(index),
	).Replace(arg)
}

// start launches sl's command in a new process group.
func (s *Supervisor) start(sl *slot) (*proc, error) {
	addr, fd0, err := s.listen(sl)
	if err != nil {
		return nil, err
	}
	if fd0 != nil {
		defer fd0.Close()
	}
	args := make([]string, len(sl.o.Command))
	for i, a := range sl.o.Command {
		args[i] = expand(a, addr, sl.index)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = sl.o.Dir
	cmd.Env = append(childEnviron(sl.o.PassEnv), sl.o.Env...)
	// No Credential: an instance runs as junction's own user, the only one
	// (with root) that could stop the child between fork and execve, where
	// vfork holds this thread; it could stop junction itself as well. A
	// start as another user would need backends/cgi's exec guard.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if fd0 != nil {
		cmd.Stdin = fd0
	}
	p := &proc{addr: addr, done: make(chan struct{})}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("spawn: pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("spawn: pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("spawn: start %s: %w", args[0], err)
	}
	p.pid = cmd.Process.Pid
	p.pipes = []*os.File{outR, errR}
	for i, r := range p.pipes {
		stream := [...]string{"stdout", "stderr"}[i]
		p.readers.Go(func() { logLines(sl, p.pid, stream, r) })
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	sl.log.Info("instance started", "pid", p.pid, "addr", addr, "cmd", args)
	return p, nil
}

// maxLogLine bounds one logged output line; longer lines are split.
const maxLogLine = 4096

// logLines logs r's lines until EOF.
func logLines(sl *slot, pid int, stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, _, err := br.ReadLine()
		if len(line) > 0 {
			sl.log.Info("output", "pid", pid, "stream", stream, "line", string(line))
		}
		if err != nil {
			return
		}
	}
}

// stop ends p's whole process group: SIGTERM, then SIGKILL after timeout
// for whatever is left (the leader or processes it forked).
func (p *proc) stop(timeout time.Duration) {
	// The group id equals the leader's pid (Setpgid). Until the leader is
	// reaped the id cannot be reused; afterwards it names the group only
	// while members remain.
	_ = syscall.Kill(-p.pid, syscall.SIGTERM) // ESRCH: nothing left to stop
	deadline := time.Now().Add(timeout)
	t := time.NewTimer(timeout)
	select {
	case <-p.done:
		t.Stop()
	case <-t.C:
	}
	for syscall.Kill(-p.pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // members exiting after the leader
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL) // ESRCH when the group is gone
	<-p.done
	// Output readers end at EOF once every member is gone; a process that
	// left the group could hold the pipe, so stop waiting after a moment.
	readers := make(chan struct{})
	go func() { p.readers.Wait(); close(readers) }()
	select {
	case <-readers:
	case <-time.After(time.Second):
		for _, f := range p.pipes {
			f.Close()
		}
		<-readers
	}
	for _, f := range p.pipes {
		f.Close()
	}
}

// defaultPassEnv are the variables of junction's own environment every
// instance gets, as CGI scripts do: enough to find programs and to speak
// the right language and time zone. Anything else (credentials, proxies,
// junction's conversation with systemd: NOTIFY_SOCKET, LISTEN_FDS) must be
// named in pass_env or set in env.
var defaultPassEnv = []string{"PATH", "LANG", "TZ"}

// childEnviron returns the variables of junction's environment an
// instance inherits: defaultPassEnv and pass, where set.
func childEnviron(pass []string) []string {
	out := make([]string, 0, len(defaultPassEnv)+len(pass))
	for _, names := range [][]string{defaultPassEnv, pass} {
		for _, name := range names {
			if v, ok := os.LookupEnv(name); ok && !slices.ContainsFunc(out, func(kv string) bool { return strings.HasPrefix(kv, name+"=") }) {
				out = append(out, name+"="+v)
			}
		}
	}
	return out
}
