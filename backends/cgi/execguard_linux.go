package cgi

import (
	"bytes"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// An execGuard watches the start of a script that runs as another user.
//
// syscall.ForkExec starts a child with vfork: the thread that started it
// waits in the kernel until the child executes the program (or exits).
// From the child's setuid on, the script's user may signal it, and a
// SIGSTOP that lands before its execve (a loop over the next process ids
// finds the moment) would hold that thread, the request and its slot for
// good: a stopped child never reaches execve, and one the limits'
// handshake traces is resumed only by its tracer, the very thread that
// waits. So while such a start has not returned, the guard kills, every
// execCheck, junction's children that are stopped before their execve;
// the start then returns a child that died of SIGKILL, answered as any
// script killed before its output (502).
type execGuard struct {
	mu    sync.Mutex
	t     *time.Timer
	done  bool
	scans *execScans
	log   *slog.Logger
}

// execScans are the scans of a Backend's guards: one finds every stopped
// child, so starts that wait together (a disk that stalls every execve)
// share one scan per execCheck instead of making one each.
type execScans struct {
	mu   sync.Mutex
	last time.Time
}

// scan kills the stopped children unless a scan did within execCheck.
func (s *execScans) scan(log *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.last) < execCheck {
		return
	}
	killStoppedBeforeExec(log)
	s.last = time.Now()
}

// execCheck is how often a start that has not returned is looked at. A
// child is stopped before its execve only by a signal someone sent it:
// it is killed at the first look that finds it so.
const execCheck = 100 * time.Millisecond

// guardExec returns the guard of a start that runs as cred, scanning with
// scans; nil when the script runs as junction (only junction's own user
// could stop it).
func guardExec(cred *syscall.Credential, scans *execScans, log *slog.Logger) *execGuard {
	if cred == nil {
		return nil
	}
	g := &execGuard{scans: scans, log: log}
	g.mu.Lock()
	g.t = time.AfterFunc(execCheck, g.check)
	g.mu.Unlock()
	return g
}

func (g *execGuard) check() {
	g.scans.scan(g.log)
	g.mu.Lock()
	if !g.done {
		g.t.Reset(execCheck)
	}
	g.mu.Unlock()
}

// stop ends the guard once the start returned.
func (g *execGuard) stop() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.done = true
	g.t.Stop()
	g.mu.Unlock()
}

// killStoppedBeforeExec kills junction's children that are stopped (by a
// signal, or for a tracer) before their execve. Such a child still shares
// junction's memory, so its command line is junction's own; once it has
// executed the script it is the script's.
func killStoppedBeforeExec(log *slog.Logger) {
	self, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		return
	}
	ppid := strconv.Itoa(os.Getpid())
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1) // what was read is looked at
	_ = d.Close()                  // a directory; nothing to flush
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || !stoppedChild(name, ppid) {
			continue
		}
		// Checked again through a pidfd: a process that exited and whose
		// pid was taken meanwhile is not signalled.
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		if cmd, err := os.ReadFile("/proc/" + name + "/cmdline"); err == nil && bytes.Equal(cmd, self) && stoppedChild(name, ppid) &&
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil {
			log.Warn("cgi: a script's process was stopped before it executed the script (a signal from its user); killed", "pid", pid)
		}
		_ = unix.Close(fd) // a pidfd; nothing to flush
	}
}

// stoppedChild reports whether the process /proc/name is junction's
// (ppid's) child and stopped: "T" (a signal) or "t" (for its tracer).
func stoppedChild(name, ppid string) bool {
	stat, err := os.ReadFile("/proc/" + name + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and ")".
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(stat[i+1:]))
	return len(f) >= 2 && (f[0] == "T" || f[0] == "t") && f[1] == ppid
}
