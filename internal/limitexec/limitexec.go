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
// backends/cgi) serves as its own helper.
package limitexec

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

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
func helper(enc, path string, argv []string) int {
	// Niceness is per thread on Linux, and execve keeps the thread that
	// calls it.
	runtime.LockOSThread()
	s, err := Parse(enc)
	if err == nil {
		err = s.apply()
	}
	if err == nil {
		// Allocations from here on come from the heap the runtime has
		// mapped already: no mmap, which RLIMIT_AS could refuse.
		err = &os.PathError{Op: "exec", Path: path, Err: syscall.Exec(path, argv, os.Environ())}
	}
	os.Stderr.WriteString("junction: limits: " + err.Error() + "\n")
	return 127
}

// apply sets s on the calling process (and, for the niceness, thread).
func (s Spec) apply() error {
	if s.Nice != 0 {
		// getpriority's raw result is 20 - nice.
		cur, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
		if err != nil {
			return errors.New("getpriority: " + err.Error())
		}
		if s.Nice > 20-cur {
			if err := unix.Setpriority(unix.PRIO_PROCESS, 0, s.Nice); err != nil {
				return errors.New("setpriority: " + err.Error())
			}
		}
	}
	set := func(name string, res int, soft, hard uint64) error {
		// syscall.Setrlimit, not unix's: for RLIMIT_NOFILE it also stops
		// syscall.Exec from restoring the soft limit the runtime raised.
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: soft, Max: hard}); err != nil {
			return errors.New("setrlimit " + name + ": " + err.Error())
		}
		return nil
	}
	if s.CPU != 0 {
		// SIGXCPU at the limit, the kernel's SIGKILL a second later for
		// a program that handles SIGXCPU.
		if err := set("RLIMIT_CPU", syscall.RLIMIT_CPU, s.CPU, s.CPU+1); err != nil {
			return err
		}
	}
	for _, l := range []struct {
		name string
		res  int
		n    uint64
	}{
		{"RLIMIT_FSIZE", syscall.RLIMIT_FSIZE, s.FileSize},
		{"RLIMIT_NOFILE", syscall.RLIMIT_NOFILE, s.OpenFiles},
		{"RLIMIT_AS", syscall.RLIMIT_AS, s.Memory},
		{"RLIMIT_NPROC", unix.RLIMIT_NPROC, s.Processes},
	} {
		if l.n != 0 {
			if err := set(l.name, l.res, l.n, l.n); err != nil {
				return err
			}
		}
	}
	return nil
}
