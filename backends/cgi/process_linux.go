package cgi

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// proc is one running script and its process group.
//
// A script that ends quickly is reaped by the goroutine that served it
// (settle): it finds the script exited, drains stderr and reaps it, with
// no goroutine, pidfd or poller registration of its own. A script still
// running after watchDelay gets watchers (launch): one goroutine waits for
// its exit on a pidfd and reaps it, another logs its stderr. The
// watchers also take over when settle finds the script still running or
// its stderr still held open by something it started.
type proc struct {
	pid     int // also the process group id (Setpgid)
	grace   time.Duration
	timeout time.Duration // the request's, for logs

	mu sync.Mutex
	// ended is set once the group was killed after the script exited;
	// from then on the pid may be reaped and reused, so no more signals.
	ended  bool
	killer *time.Timer // SIGKILL after grace, once terminate sent SIGTERM
	watch  *time.Timer // launches the watchers after watchDelay
	// claimed is set by whichever of settle and the watch timer came
	// first; the other then leaves the script alone.
	claimed bool

	exited     atomic.Bool
	done       chan struct{} // closed when the script is reaped
	stderrDone chan struct{} // closed when stderr was read to its end
	status     syscall.WaitStatus

	stdout   *os.File // parent's read end, on the poller
	stderrFD int      // parent's read end, non-blocking
	stderr   *os.File // stderrFD on the poller, once a watcher reads it
	errLog   stderrLog
	onExit   func()    // called once the script is reaped
	watchAt  time.Time // when the watchers start unless settle came first
}

// watchDelay is how long a script runs before it gets watchers. Most
// CGI requests end well within it and cost no extra goroutine; a script
// that outlives it is reaped as promptly as before, and one that fills
// its stderr pipe while its stdout is still open waits at most this long
// for a reader.
const watchDelay = 10 * time.Millisecond

// pipes are the descriptors of one spawn: the child's ends are raw
// blocking descriptors that never touch the runtime's poller; the parent's
// read ends are non-blocking *os.Files.
type pipes struct {
	childIn, childOut, childErr int // -1 when absent
	stdout, stdin               *os.File
	stderr                      int // parent's read end, non-blocking; -1 when absent
}

// newPipes creates the stdout and stderr pipes and, when withStdin is set,
// the stdin pipe. Otherwise the child's stdin is in (/dev/null, or a
// spooled body), which stays the caller's to close.
func newPipes(withStdin bool, in int) (*pipes, error) {
	p := &pipes{childIn: in, childOut: -1, childErr: -1, stderr: -1}
	var err error
	if p.stdout, p.childOut, err = readPipe("stdout"); err != nil {
		return nil, err
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		p.closeParent()
		p.closeChild()
		return nil, fmt.Errorf("cgi: stderr pipe: %w", err)
	}
	// Left off the poller until a watcher needs to wait on it: a script
	// that has exited is drained with plain reads.
	setNonblock(fds[0])
	p.stderr, p.childErr = fds[0], fds[1]
	if withStdin {
		var fds [2]int
		if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
			p.closeParent()
			p.closeChild()
			return nil, fmt.Errorf("cgi: stdin pipe: %w", err)
		}
		// Non-blocking write end: the feeder's writes park on the poller
		// and the descriptor is closed safely while a write waits.
		setNonblock(fds[1])
		p.childIn, p.stdin = fds[0], os.NewFile(uintptr(fds[1]), "cgi-stdin")
	}
	return p, nil
}

// readPipe returns a pipe whose read end is pollable.
func readPipe(name string) (*os.File, int, error) {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		return nil, -1, fmt.Errorf("cgi: %s pipe: %w", name, err)
	}
	setNonblock(fds[0])
	return os.NewFile(uintptr(fds[0]), "cgi-"+name), fds[1], nil
}

// setNonblock makes a descriptor junction just created non-blocking with
// one fcntl: a fresh pipe end or pidfd has no other status flag to keep,
// so the F_GETFL that syscall.SetNonblock does first is not needed.
func setNonblock(fd int) {
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFL, unix.O_NONBLOCK) // cannot fail on a valid descriptor
}

// closeChild closes the child's ends once the child has them (or failed
// to start). The shared /dev/null descriptor is not ours to close.
func (p *pipes) closeChild() {
	for _, fd := range []int{p.childOut, p.childErr} {
		if fd >= 0 {
			_ = syscall.Close(fd) // a pipe end; nothing to flush
		}
	}
	if p.stdin != nil {
		_ = syscall.Close(p.childIn)
	}
}

func (p *pipes) closeParent() {
	closeAll(p.stdout, p.stdin)
	if p.stderr >= 0 {
		_ = syscall.Close(p.stderr) // a pipe end; nothing to flush
	}
}

// devNull is the script's stdin when there is no body, opened once per
// process: an open and a close per request otherwise. It is never closed.
var devNull = sync.OnceValues(func() (int, error) {
	return syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
})

// spawn starts argv (argv[0] is the program's path) in its own process
// group with the given pipes, under lim's limits when lim is set; errLog
// receives its stderr and onExit is called once it is reaped. A start as
// cred is guarded against a stop before its execve, with scans. The
// watchers start after watchDelay unless settle comes first.
func spawn(argv []string, dir string, env []string, cred *syscall.Credential, lim *limiter, scans *execScans, fds *pipes, grace time.Duration, errLog stderrLog, onExit func()) (*proc, error) {
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{uintptr(fds.childIn), uintptr(fds.childOut), uintptr(fds.childErr)},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Credential: cred},
	}
	// argv is the script alone (or its interpreter's command and the
	// script), never words from QUERY_STRING (RFC 3875 4.4's ISINDEX
	// command line is a shell-injection hazard).
	var pid int
	var err error
	guard := guardExec(cred, scans, errLog.log) // execguard_linux.go
	if lim == nil {
		pid, err = syscall.ForkExec(argv[0], argv, attr)
	} else {
		pid, err = lim.start(argv[0], argv, attr)
	}
	guard.stop()
	if err != nil {
		return nil, err
	}
	p := &proc{pid: pid, grace: grace, done: make(chan struct{}), stderrDone: make(chan struct{}),
		stdout: fds.stdout, stderrFD: fds.stderr, errLog: errLog, onExit: onExit}
	p.watchAt = time.Now().Add(watchDelay)
	p.mu.Lock()
	p.watch = time.AfterFunc(watchDelay, p.launchOnce)
	p.mu.Unlock()
	return p, nil
}

// launchOnce starts the watchers unless settle got there first.
func (p *proc) launchOnce() {
	p.mu.Lock()
	claimed := p.claimed
	p.claimed = true
	p.mu.Unlock()
	if !claimed {
		p.launch()
	}
}

// launch starts the watchers: one reaps the script, one logs its stderr.
// The caller has claimed the script.
func (p *proc) launch() {
	p.readStderrAsync() // first: reap, on the waiter, sets p.stderr's deadline
	go p.wait()
}

// readStderrAsync puts stderr on the poller and logs it on a goroutine of
// its own until it ends, or until the deadline reap sets.
func (p *proc) readStderrAsync() {
	p.stderr = os.NewFile(uintptr(p.stderrFD), "cgi-stderr")
	go p.readStderr()
}

func (p *proc) readStderr() {
	defer close(p.stderrDone)
	_ = p.errLog.drain(p.stderr) // the end, a deadline or a closed pipe: all end the log
	_ = p.stderr.Close()         // a pipe end; nothing to flush
}

// settle reaps the script on the calling goroutine if it has exited and
// reports whether it did. Otherwise it leaves (or has left) the script to
// the watchers, and p.done closes once they reaped it. Either way
// p.stderrDone closes once stderr was read to its end.
func (p *proc) settle() bool {
	p.mu.Lock()
	claimed := p.claimed
	p.claimed = true
	p.watch.Stop()
	p.mu.Unlock()
	if claimed {
		return false
	}
	if found, e := waitid(pPID, p.pid, wExited|wNowait|wNohang); !found || e != 0 {
		p.launch()
		return false
	}
	// What is left of the group goes first, as the watcher does it: it
	// must not keep writing while stderr is drained.
	p.killGroup()
	if err := p.errLog.drain(&rawReader{fd: p.stderrFD, left: maxSettleStderr}); errors.Is(err, errWouldBlock) {
		// Something that left the group holds stderr, or there is more
		// than the fast path reads: a watcher reads the rest until grace
		// passes (reap sets the deadline).
		p.readStderrAsync()
	} else {
		_ = syscall.Close(p.stderrFD) // a pipe end; nothing to flush
		close(p.stderrDone)
	}
	p.reap()
	return true
}

// killGroup kills whatever is left of the group of a script that has
// exited and is not reaped yet: as a zombie it keeps its pid, the group
// id, from being reused. Later signals are no-ops.
func (p *proc) killGroup() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ended {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL) // ESRCH: nothing left, fine
		p.ended = true
	}
	if p.killer != nil {
		p.killer.Stop()
	}
}

// maxSettleStderr bounds what settle reads of stderr on the serving
// goroutine: a pipe's worth. More goes to a watcher, under the grace
// deadline.
const maxSettleStderr = 64 << 10

// signal sends sig to the whole process group while it is ours to signal.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Never signal group 0 or 1: that would be junction's own or init's.
	if p.ended || p.pid <= 1 {
		return os.ErrProcessDone
	}
	if err := syscall.Kill(-p.pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	return nil
}

// terminate sends SIGTERM to the group and SIGKILL after grace unless the
// script exited by then.
func (p *proc) terminate() {
	if p.signal(syscall.SIGTERM) != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ended && p.killer == nil {
		p.killer = time.AfterFunc(p.grace, func() {
			_ = p.signal(syscall.SIGKILL) // ErrProcessDone: it exited in time
		})
	}
}

// wait waits for the script to exit and reaps it.
func (p *proc) wait() {
	p.waitExited()
	p.reap()
}

// reap kills whatever is left of the group of a script that has exited,
// bounds how long stdout and stderr may stay open, and reaps it.
func (p *proc) reap() {
	defer close(p.done)
	p.killGroup()
	p.exited.Store(true)
	// Something that left the group (setsid) may still hold stdout or
	// stderr: it gets grace from the exit, once. The deadline is never
	// moved, so output trickling in cannot hold the response open.
	dl := time.Now().Add(p.grace)
	// Errors only mean the pipe was closed already.
	_ = p.stdout.SetReadDeadline(dl)
	if p.stderr != nil {
		_ = p.stderr.SetReadDeadline(dl)
	}
	for {
		_, err := syscall.Wait4(p.pid, &p.status, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	if p.onExit != nil {
		p.onExit()
	}
}

// waitExited blocks until the script has exited, without reaping it. With
// a pidfd the goroutine parks on the runtime's poller; without one a
// thread blocks in waitid.
func (p *proc) waitExited() {
	// The script is not reaped before this returns, so its pid still
	// names it.
	if fd, err := unix.PidfdOpen(p.pid, unix.PIDFD_NONBLOCK); err == nil {
		exit := os.NewFile(uintptr(fd), "cgi-pidfd")
		defer exit.Close() // a pidfd; nothing to flush
		if rc, err := exit.SyscallConn(); err == nil {
			var werr syscall.Errno
			err = rc.Read(func(fd uintptr) bool {
				found, e := waitid(pPIDFD, int(fd), wExited|wNowait|wNohang)
				werr = e
				return found || (e != 0 && e != syscall.EINTR)
			})
			if err == nil && werr == 0 {
				return
			}
		}
	}
	for {
		if _, e := waitid(pPID, p.pid, wExited|wNowait); e != syscall.EINTR {
			return
		}
	}
}

// waitid's id types and options (linux/wait.h); package syscall has no
// waitid.
const (
	pPID    = 1
	pPIDFD  = 3
	wNohang = 0x1
	wExited = 0x4
	wNowait = 0x01000000
	// siPid is the offset of si_pid in siginfo_t on 64-bit Linux; it
	// stays 0 when WNOHANG found no exited child.
	siPid = 16
)

// waitid reports whether a child matching id has exited.
func waitid(idtype, id, options int) (bool, syscall.Errno) {
	var info [128]byte // siginfo_t
	_, _, e := syscall.Syscall6(syscall.SYS_WAITID, uintptr(idtype), uintptr(id),
		uintptr(unsafe.Pointer(&info[0])), uintptr(options), 0, 0)
	return *(*int32)(unsafe.Pointer(&info[siPid])) != 0, e
}

// exitStatus describes how the script ended, for logs.
func exitStatus(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return "signal: " + signalName(ws.Signal()) + " (" + ws.Signal().String() + ")"
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// errWouldBlock is rawReader's "nothing there yet, and not the end".
var errWouldBlock = errors.New("cgi: read would block")

// rawReader reads a non-blocking descriptor that is not on the poller,
// at most left bytes: after that it reports errWouldBlock.
type rawReader struct {
	fd   int
	left int
}

func (r *rawReader) Read(b []byte) (int, error) {
	if r.left <= 0 {
		return 0, errWouldBlock
	}
	if len(b) > r.left {
		b = b[:r.left]
	}
	for {
		n, err := syscall.Read(r.fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errWouldBlock
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		r.left -= n
		return n, nil
	}
}
