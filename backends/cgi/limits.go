package cgi

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/junction-gw/junction/internal/limitexec"
)

// Limits are resource limits for each script, in force before its first
// instruction: junction stops a limited script right after its exec and
// sets them before it runs (see limiter). Scripts of a backend without
// limits are started as before. A zero field sets no limit.
type Limits struct {
	// CPU is the CPU time a script may use, in whole seconds
	// (RLIMIT_CPU): SIGXCPU then, SIGKILL a second later.
	CPU time.Duration
	// Memory bounds the script's address space in bytes (RLIMIT_AS):
	// allocations beyond it fail inside the script.
	Memory int64
	// Processes bounds the processes and threads of the user the script
	// runs as, all of them together (RLIMIT_NPROC): a fork bomb stops
	// there. It needs User naming a user other than junction's own (the
	// limit counts junction's own threads when scripts run as junction,
	// and does not bind root).
	Processes int
	// OpenFiles bounds the script's open descriptors (RLIMIT_NOFILE).
	OpenFiles int
	// FileSize bounds the size of each file the script writes
	// (RLIMIT_FSIZE): SIGXFSZ beyond it.
	FileSize int64
	// Nice is the script's niceness, 1 (a little less CPU priority) to
	// 19 (the least); a niceness junction already has is never lowered.
	Nice int
}

// IsZero reports whether l sets no limit.
func (l Limits) IsZero() bool { return l == Limits{} }

// Over returns l with the fields o sets taken from o.
func (l Limits) Over(o Limits) Limits {
	pick := func(base, over int64) int64 {
		if over != 0 {
			return over
		}
		return base
	}
	return Limits{
		CPU:       time.Duration(pick(int64(l.CPU), int64(o.CPU))),
		Memory:    pick(l.Memory, o.Memory),
		Processes: int(pick(int64(l.Processes), int64(o.Processes))),
		OpenFiles: int(pick(int64(l.OpenFiles), int64(o.OpenFiles))),
		FileSize:  pick(l.FileSize, o.FileSize),
		Nice:      int(pick(int64(l.Nice), int64(o.Nice))),
	}
}

// limiter checks l for b's scripts, which run as b.cred (nil: as
// junction), and returns what starts them under l, nil when l sets
// nothing. Each problem names the key of the configuration file.
func (b *Backend) limiter(l Limits) (*limiter, error) {
	cred := b.cred
	if l.IsZero() {
		return nil, nil
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("limits.%s: "+format, append([]any{key}, args...)...))
	}
	var s limitexec.Spec
	switch {
	case l.CPU < 0:
		bad("cpu", "%v must not be negative", l.CPU)
	case l.CPU%time.Second != 0:
		bad("cpu", "%v is not a whole number of seconds (RLIMIT_CPU counts seconds)", l.CPU)
	default:
		s.CPU = uint64(l.CPU / time.Second)
	}
	if l.Nice < 0 || l.Nice > 19 {
		bad("nice", "%d is outside 1..19 (0 leaves it)", l.Nice)
	}
	s.Nice = l.Nice
	// Raising a hard limit needs CAP_SYS_RESOURCE, which scripts that
	// run as another user lose before the helper (the fallback) runs.
	anyUser := capResource()
	canRaise := anyUser && (cred == nil || cred.Uid == 0)
	hard := func(res int) uint64 {
		var cur unix.Rlimit
		if canRaise || unix.Getrlimit(res, &cur) != nil {
			return ^uint64(0)
		}
		return cur.Max
	}
	// The helper's hard CPU limit is one second above the soft one.
	if s.CPU > 0 && s.CPU+1 > hard(unix.RLIMIT_CPU) {
		bad("cpu", "%v is above the hard limit junction has and scripts inherit (%d s); raising it needs root with CAP_SYS_RESOURCE, scripts running as root", l.CPU, hard(unix.RLIMIT_CPU)-1)
	}
	for _, c := range []struct {
		key string
		res int
		n   int64
		to  *uint64
	}{
		{"memory", unix.RLIMIT_AS, l.Memory, &s.Memory},
		{"processes", unix.RLIMIT_NPROC, int64(l.Processes), &s.Processes},
		{"open_files", unix.RLIMIT_NOFILE, int64(l.OpenFiles), &s.OpenFiles},
		{"file_size", unix.RLIMIT_FSIZE, l.FileSize, &s.FileSize},
	} {
		switch {
		case c.n < 0:
			bad(c.key, "%d must not be negative", c.n)
		case c.n > 0 && uint64(c.n) > hard(c.res):
			bad(c.key, "%d is above the hard limit junction has and scripts inherit (%d); raising it needs root with CAP_SYS_RESOURCE, scripts running as root", c.n, hard(c.res))
		default:
			*c.to = uint64(c.n)
		}
	}
	// run_as owner, and user_dir alone, run each script as its owner:
	// never root, at or above min_uid.
	perScript := b.runAsOwner || (b.userDir != "" && b.root == "")
	if l.Processes > 0 && !perScript {
		// RLIMIT_NPROC counts every task of the real user id and does
		// not bind root: as junction's own user a fork bomb would stop
		// junction from starting threads, as root it would not stop.
		if cred == nil || cred.Uid == 0 || int(cred.Uid) == os.Getuid() || int(cred.Uid) == os.Geteuid() {
			bad("processes", "needs user naming a user other than junction's own and not root, or run_as: owner (RLIMIT_NPROC counts all of that user's processes, and does not bind root)")
		}
	}
	if _, err := os.Stat(limitexec.Exe); err != nil {
		errs = append(errs, fmt.Errorf("limits: scripts with limits start through %s, which is not there (is /proc mounted?): %w", limitexec.Exe, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &limiter{spec: s, prefix: s.Prefix(), noTrace: &b.noTrace, anyUser: anyUser, log: b.log}, nil
}

// helperArgv returns the path and argv that start argv0 with argv
// through the limit helper, whose arguments prefix carries the limits.
func helperArgv(prefix []string, argv0 string, argv []string) (string, []string) {
	out := make([]string, 0, len(prefix)+1+len(argv))
	out = append(append(append(out, prefix...), argv0), argv...)
	return limitexec.Exe, out
}

// limitSignal names the limit a signal says the script ran into, or ""
// when it is not a limit's signal.
func limitSignal(ws syscall.WaitStatus) string {
	if !ws.Signaled() {
		return ""
	}
	switch ws.Signal() {
	case syscall.SIGXCPU:
		return "cpu"
	case syscall.SIGXFSZ:
		return "file_size"
	}
	return ""
}

// signalName is a signal's name as metrics label it: "SIGKILL".
func signalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return sig.String()
}
