package cgi

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// proc is one running script and its process group.
type proc struct {
	cmd   *exec.Cmd
	grace time.Duration

	mu sync.Mutex
	// ended is set once the group was killed after the script exited;
	// from then on the pid may be reaped and reused, so no more signals.
	ended  bool
	exited atomic.Bool
	done   chan struct{} // closed when the script is reaped
	state  *os.ProcessState

	stdout, stderr *os.File // parent's read ends
}

// signal sends sig to the whole process group while it is ours to signal.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return os.ErrProcessDone
	}
	// Cmd.Process is set before Start runs the Cancel watcher; the pid is
	// also the group id (Setpgid). Never signal group 0: that is junction's.
	pid := p.cmd.Process.Pid
	if pid <= 0 {
		return os.ErrProcessDone
	}
	if err := syscall.Kill(-pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	return nil
}

// wait waits for the script to exit, kills whatever is left of its group,
// bounds how long stdout and stderr may stay open, and reaps it.
func (p *proc) wait() {
	defer close(p.done)
	pid := p.cmd.Process.Pid
	waitExited(pid)
	p.mu.Lock()
	// The script is a zombie: its pid (the group id) cannot be reused yet.
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // ESRCH: nothing left, fine
	}
	p.ended = true
	p.mu.Unlock()
	p.exited.Store(true)
	dl := time.Now().Add(p.grace)
	// Errors only mean the pipe was closed already.
	_ = p.stdout.SetReadDeadline(dl)
	_ = p.stderr.SetReadDeadline(dl)
	_ = p.cmd.Wait() // the exit status is in ProcessState
	p.state = p.cmd.ProcessState
}

// waitExited blocks until pid has exited, without reaping it.
func waitExited(pid int) {
	const (
		pPID    = 1
		wExited = 4
		wNowait = 0x01000000
	)
	var info [128]byte // siginfo_t
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), wExited|wNowait, 0, 0)
		if e != syscall.EINTR {
			return
		}
	}
}

// pipeReader reads a script's output pipe. Once the script has exited,
// each read may wait at most grace for more data: a process that left the
// group (setsid) must not hold the response open.
type pipeReader struct {
	f *os.File
	p *proc
}

func (r pipeReader) Read(b []byte) (int, error) {
	if r.p.exited.Load() {
		_ = r.f.SetReadDeadline(time.Now().Add(r.p.grace)) // fails only when closed
	}
	return r.f.Read(b)
}
