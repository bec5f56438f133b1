// Package limitexec starts a program with resource limits and a
// niceness in force from its first instruction.
//
// syscall.ForkExec has no hook between fork and exec where setrlimit
// could run, and a prlimit after the start leaves a window in which the
// program runs unlimited. So the program is started through its parent's
// own binary instead: the parent runs Exe (the kernel's link to the
// running executable) with argv Prefix(spec) + path + the program's argv;
// in that process this package's init, which runs before the rest of the
// binary's packages are initialized, sets the limits and replaces itself
// with the program (execve). Nothing else of the binary runs there. The
// program keeps the process id, process group, credentials, descriptors
// and environment it was started with.
//
// The mode is selected by argv[0] alone, which only the process that
// starts the helper chooses: a request to a gateway can set environment
// variables of a script but never its argv[0]. Entering the mode gains
// nothing: the helper has the identity it was started with and can only
// lower its own limits.
//
// Any binary that links this package (junction, and the tests of
// backends/cgi) serves as its own helper. It costs a Go runtime start
// per program (about 3 ms of CPU for junction's binary), so backends/cgi
// uses it only where its cheaper way, a stop-before-exec handshake over
// ptrace, is not available.
package limitexec

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Exe is what the parent executes: the running binary, through the
// kernel's link to it, so a binary replaced on disk (an upgrade) still
// starts the helper of the version that is running.
const Exe = "/proc/self/exe"

// arg0 selects the helper mode; ps shows it for the instant the helper
// runs.
const arg0 = "junction: limits"

// Spec is a set of limits. A zero field leaves that limit as inherited.
type Spec struct {
	// CPU is the CPU time in seconds (RLIMIT_CPU): SIGXCPU when it is
	// used up, SIGKILL one second later.
	CPU uint64
	// Memory is the address space in bytes (RLIMIT_AS): allocations
	// beyond it fail inside the program.
	Memory uint64
	// Processes bounds the processes and threads of the program's real
	// user id, all of them (RLIMIT_NPROC): fork fails beyond it. It does
	// not bind root.
	Processes uint64
	// OpenFiles bounds the descriptor numbers (RLIMIT_NOFILE).
	OpenFiles uint64
	// FileSize bounds the size of a file the program writes
	// (RLIMIT_FSIZE): SIGXFSZ, or EFBIG when it handles that signal.
	FileSize uint64
	// Nice is the niceness, 1 to 19. The helper never lowers the
	// niceness it inherited (that needs privileges).
	Nice int
}

// IsZero reports whether s sets nothing.
func (s Spec) IsZero() bool { return s == Spec{} }

// keys, in the order the helper applies them. nproc comes last among the
// limits: the helper's runtime starts no thread after it.
var keys = []string{"nice", "cpu", "fsize", "nofile", "as", "nproc"}

func (s *Spec) field(key string) *uint64 {
	switch key {
	case "cpu":
		return &s.CPU
	case "as":
		return &s.Memory
	case "nproc":
		return &s.Processes
	case "nofile":
		return &s.OpenFiles
	case "fsize":
		return &s.FileSize
	}
	return nil
}

// String encodes s as the helper's second argument: "cpu=10,as=67108864".
func (s Spec) String() string {
	var b strings.Builder
	for _, k := range keys {
		var v string
		if k == "nice" {
			if s.Nice == 0 {
				continue
			}
			v = strconv.Itoa(s.Nice)
		} else if n := *s.field(k); n != 0 {
			v = strconv.FormatUint(n, 10)
		} else {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + v)
	}
	return b.String()
}

// Parse decodes what String encoded.
func Parse(enc string) (Spec, error) {
	var s Spec
	if enc == "" {
		return s, nil
	}
	for _, kv := range strings.Split(enc, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Spec{}, errors.New("limitexec: malformed limit " + strconv.Quote(kv))
		}
		if k == "nice" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 19 {
				return Spec{}, errors.New("limitexec: nice " + strconv.Quote(v) + " is not 1..19")
			}
			s.Nice = n
			continue
		}
		f := s.field(k)
		if f == nil {
			return Spec{}, errors.New("limitexec: unknown limit " + strconv.Quote(k))
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return Spec{}, errors.New("limitexec: limit " + k + "=" + strconv.Quote(v) + " is not a positive number")
		}
		*f = n
	}
	return s, nil
}

// Prefix returns the arguments that go before a program's path and argv
// when Exe runs it under s.
func (s Spec) Prefix() []string { return []string{arg0, s.String()} }

func init() {
	if len(os.Args) < 4 || os.Args[0] != arg0 {
		return
	}
	os.Exit(helper(os.Args[1], os.Args[2], os.Args[3:]))
}

// helper applies the encoded limits and executes path with argv. It
// returns only on failure, after saying why on stderr (which a CGI runner
// logs).
//
// Once RLIMIT_AS is set the runtime may not map memory: its address
// space, reserved at start, is far beyond a script's limit, and an
// allocation that needs a new mapping would be fatal. So everything
// execve needs is built first, and from the first limit on the helper
// makes raw system calls only and allocates nothing.
func helper(enc, path string, argv []string) int {
	// Niceness is per thread on Linux, and execve keeps the thread that
	// calls it.
	runtime.LockOSThread()
	s, err := Parse(enc)
	if err != nil {
		return fail(err.Error())
	}
	pathp, err := syscall.BytePtrFromString(path)
	if err != nil {
		return fail("exec " + path + ": " + err.Error())
	}
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return fail("exec " + path + ": " + err.Error())
	}
	envp, err := syscall.SlicePtrFromStrings(os.Environ())
	if err != nil {
		return fail("exec " + path + ": " + err.Error())
	}
	// The runtime raised its own soft RLIMIT_NOFILE at start, and gives
	// programs it starts the original back; so does syscall.Exec, before
	// its execve, which here fails at once (no such file "") and leaves
	// the original in place for the script, as a script started without
	// limits has it.
	_ = syscall.Exec("", nil, nil)        // ENOENT; only the restore matters
	msg := make([]byte, 0, len(path)+256) // for a failure from here on
	if name, errno := s.apply(); errno != 0 {
		return failRaw(append(append(append(msg, "junction: limits: setrlimit "...), name...), ": "...), errno)
	}
	_, _, errno := syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(pathp)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])))
	return failRaw(append(append(append(msg, "junction: limits: exec "...), path...), ": "...), errno)
}

// fail reports a failure before any limit was set.
func fail(msg string) int {
	_, _ = os.Stderr.WriteString("junction: limits: " + msg + "\n") // nothing else to report to
	return 127
}

// failRaw reports a failure without allocating: msg has room for the
// error's text (an Errno's is a constant string).
func failRaw(msg []byte, errno syscall.Errno) int {
	msg = append(append(msg, errno.Error()...), '\n')
	_, _, _ = syscall.RawSyscall(syscall.SYS_WRITE, 2, uintptr(unsafe.Pointer(&msg[0])), uintptr(len(msg)))
	return 127
}

// apply sets s on the calling process (and, for the niceness, thread)
// with raw system calls, allocating nothing. On failure it names what
// failed.
func (s *Spec) apply() (string, syscall.Errno) {
	if s.Nice != 0 {
		// getpriority's raw result is 20 - nice.
		cur, _, errno := syscall.RawSyscall(syscall.SYS_GETPRIORITY, unix.PRIO_PROCESS, 0, 0)
		if errno != 0 {
			return "getpriority", errno
		}
		if s.Nice > 20-int(cur) {
			if _, _, errno := syscall.RawSyscall(syscall.SYS_SETPRIORITY, unix.PRIO_PROCESS, 0, uintptr(s.Nice)); errno != 0 {
				return "setpriority", errno
			}
		}
	}
	set := func(res int, soft, hard uint64) syscall.Errno {
		lim := syscall.Rlimit{Cur: soft, Max: hard}
		_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, 0, uintptr(res), uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
		return errno
	}
	if s.CPU != 0 {
		// SIGXCPU at the limit, the kernel's SIGKILL a second later for
		// a program that handles SIGXCPU.
		if errno := set(syscall.RLIMIT_CPU, s.CPU, s.CPU+1); errno != 0 {
			return "RLIMIT_CPU", errno
		}
	}
	// In keys' order; RLIMIT_NPROC last.
	if s.FileSize != 0 {
		if errno := set(syscall.RLIMIT_FSIZE, s.FileSize, s.FileSize); errno != 0 {
			return "RLIMIT_FSIZE", errno
		}
	}
	if s.OpenFiles != 0 {
		if errno := set(syscall.RLIMIT_NOFILE, s.OpenFiles, s.OpenFiles); errno != 0 {
			return "RLIMIT_NOFILE", errno
		}
	}
	if s.Memory != 0 {
		if errno := set(syscall.RLIMIT_AS, s.Memory, s.Memory); errno != 0 {
			return "RLIMIT_AS", errno
		}
	}
	if s.Processes != 0 {
		if errno := set(unix.RLIMIT_NPROC, s.Processes, s.Processes); errno != 0 {
			return "RLIMIT_NPROC", errno
		}
	}
	return "", 0
}
