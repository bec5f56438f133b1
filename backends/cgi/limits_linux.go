package cgi

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/junction-gw/junction/internal/limitexec"
)

// A limiter starts scripts with limits in force before their first
// instruction.
//
// The usual way is a stop-before-exec handshake: the child asks to be
// traced (PTRACE_TRACEME) just before its execve, so the kernel stops it
// right after the exec, before the script's first instruction; junction
// sets the limits on it (prlimit, setpriority) and detaches, and the
// script runs. It costs the child one system call and a stop, junction a
// wait and a handful of system calls.
//
// Setting limits on another process needs the same user and group ids,
// or CAP_SYS_RESOURCE: a junction without that capability (Docker drops
// it by default) starts scripts that run as another user through the
// helper mode of junction's own binary (internal/limitexec) instead,
// which sets the limits on itself and executes the script, at the cost
// of a Go runtime start per script. So does a junction where ptrace is
// not allowed (a seccomp filter, Yama ptrace_scope 3): the handshake
// fails with EPERM, which is logged once, and the helper starts every
// script with limits from then on.
type limiter struct {
	spec   limitexec.Spec
	prefix []string // the helper's arguments
	// noTrace is shared by a Backend's limiters: ptrace was refused once.
	noTrace *atomic.Bool
	// anyUser says junction may set limits on another user's process
	// (CAP_SYS_RESOURCE).
	anyUser bool
	log     *slog.Logger
}

// traceable reports whether the handshake can set the limits of a
// script that runs as cred.
func (l *limiter) traceable(cred *syscall.Credential) bool {
	if l.noTrace.Load() {
		return false
	}
	return l.anyUser || cred == nil ||
		int(cred.Uid) == os.Getuid() && int(cred.Uid) == os.Geteuid() && int(cred.Gid) == os.Getgid() && int(cred.Gid) == os.Getegid()
}

// capResource reports whether junction has CAP_SYS_RESOURCE.
func capResource() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_SYS_RESOURCE/32].Effective&(1<<(unix.CAP_SYS_RESOURCE%32)) != 0
}

// start starts argv0 with argv and attr under the limits and returns its
// pid. On failure nothing of the child is left.
func (l *limiter) start(argv0 string, argv []string, attr *syscall.ProcAttr) (int, error) {
	if l.traceable(attr.Sys.Credential) {
		pid, err := l.startTraced(argv0, argv, attr)
		if !errors.Is(err, syscall.EPERM) {
			return pid, err
		}
		if l.noTrace.CompareAndSwap(false, true) {
			l.log.Warn("cgi: cannot stop scripts before their first instruction to set their limits; "+
				"scripts with limits start through junction's limit helper from now on (slower)", "err", err)
		}
	}
	path, hargv := helperArgv(l.prefix, argv0, argv)
	return syscall.ForkExec(path, hargv, attr)
}

// startTraced is the stop-before-exec handshake.
func (l *limiter) startTraced(argv0 string, argv []string, attr *syscall.ProcAttr) (int, error) {
	// The tracer is the thread that forked: the wait and PTRACE_DETACH
	// must come from it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sys := *attr.Sys
	sys.Ptrace = true
	traced := *attr
	traced.Sys = &sys
	pid, err := syscall.ForkExec(argv0, argv, &traced)
	if err != nil {
		return 0, err
	}
	if err := l.applyStopped(pid); err != nil {
		err = fmt.Errorf("setting limits: %w", err)
		// The script must not run without its limits.
		_ = syscall.Kill(pid, syscall.SIGKILL) // a stopped tracee dies of it too
		var ws syscall.WaitStatus
		for {
			if _, werr := syscall.Wait4(pid, &ws, syscall.WALL, nil); werr != syscall.EINTR {
				break
			}
		}
		return 0, err
	}
	return pid, nil
}

// cldTrapped is siginfo's si_code for a traced child's stop.
const (
	siCode     = 8 // offset of si_code in siginfo_t
	cldTrapped = 4
	wStopped   = 0x2
)

// applyStopped waits for the traced child to stop after its exec, sets
// the limits on it and lets it go. A child that died meanwhile (killed
// before it stopped) is left unreaped for its proc.
func (l *limiter) applyStopped(pid int) error {
	var info [128]byte // siginfo_t
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info[0])),
			wExited|wStopped|wNowait, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		break
	}
	if *(*int32)(unsafe.Pointer(&info[siCode])) != cldTrapped {
		return nil // exited or killed: nothing to limit, proc reaps it
	}
	s := l.spec
	set := func(res int, soft, hard uint64) error {
		return unix.Prlimit(pid, res, &unix.Rlimit{Cur: soft, Max: hard}, nil)
	}
	var err error
	if s.CPU != 0 {
		// SIGXCPU at the limit, SIGKILL a second later.
		err = errors.Join(err, set(unix.RLIMIT_CPU, s.CPU, s.CPU+1))
	}
	for _, r := range []struct {
		res int
		n   uint64
	}{{unix.RLIMIT_FSIZE, s.FileSize}, {unix.RLIMIT_NOFILE, s.OpenFiles}, {unix.RLIMIT_AS, s.Memory}, {unix.RLIMIT_NPROC, s.Processes}} {
		if r.n != 0 {
			err = errors.Join(err, set(r.res, r.n, r.n))
		}
	}
	if s.Nice != 0 {
		// The raw getpriority result is 20 - nice; never lower it.
		if cur, gerr := unix.Getpriority(unix.PRIO_PROCESS, pid); gerr != nil {
			err = errors.Join(err, gerr)
		} else if s.Nice > 20-cur {
			err = errors.Join(err, unix.Setpriority(unix.PRIO_PROCESS, pid, s.Nice))
		}
	}
	if err != nil {
		return err
	}
	return unix.PtraceDetach(pid)
}
