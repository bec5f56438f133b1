package limitexec

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestSpecRoundTrip(t *testing.T) {
	for _, s := range []Spec{
		{},
		{CPU: 1},
		{CPU: 10, Memory: 64 << 20, Processes: 50, OpenFiles: 256, FileSize: 10 << 20, Nice: 10},
		{Nice: 19},
	} {
		got, err := Parse(s.String())
		if err != nil || got != s {
			t.Errorf("Parse(%q) = %+v, %v, want %+v", s.String(), got, err, s)
		}
	}
	if got := (Spec{CPU: 10, Memory: 64 << 20, Nice: 5}).String(); got != "nice=5,cpu=10,as=67108864" {
		t.Errorf("String = %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, enc := range []string{"cpu", "cpu=", "cpu=0", "cpu=-1", "cpu=x", "nice=0", "nice=20", "nice=-5", "core=1", "cpu=1,,as=2"} {
		if s, err := Parse(enc); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", enc, s)
		}
	}
}

// limitsOf runs cat /proc/self/limits through the helper (this test
// binary links the package, so it is its own helper) and returns the
// soft and hard value of each limit by its name in that file.
func limitsOf(t *testing.T, s Spec) map[string][2]string {
	t.Helper()
	cmd := exec.Command(Exe, "/bin/cat", "/bin/cat", "/proc/self/limits")
	cmd.Args = append(s.Prefix(), cmd.Args[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	m := map[string][2]string{}
	for _, line := range strings.Split(string(out), "\n")[1:] {
		// "Max cpu time              1                    2                    seconds"
		if len(line) < 26 {
			continue
		}
		f := strings.Fields(line[26:])
		if len(f) >= 2 {
			m[strings.TrimSpace(line[:26])] = [2]string{f[0], f[1]}
		}
	}
	return m
}

func TestHelperSetsLimits(t *testing.T) {
	got := limitsOf(t, Spec{CPU: 3, Memory: 64 << 20, Processes: 4000, OpenFiles: 99, FileSize: 1 << 20})
	want := map[string][2]string{
		"Max cpu time":      {"3", "4"},
		"Max address space": {"67108864", "67108864"},
		"Max processes":     {"4000", "4000"},
		"Max open files":    {"99", "99"},
		"Max file size":     {"1048576", "1048576"},
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestHelperTinyAddressSpace runs a program under an address space far
// below what the helper's own runtime has reserved: the helper must get
// from setrlimit to execve without mapping memory.
func TestHelperTinyAddressSpace(t *testing.T) {
	for range 20 {
		cmd := exec.Command(Exe)
		cmd.Args = append(Spec{Memory: 4 << 20}.Prefix(), "/bin/true", "/bin/true")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helper under 4 MiB: %v\n%s", err, out)
		}
	}
}

// TestHelperKeepsOriginalOpenFiles: without open_files the program gets
// the soft RLIMIT_NOFILE the helper was started with, not the one the
// helper's runtime raised its own to.
func TestHelperKeepsOriginalOpenFiles(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Max < 200 {
		t.Skipf("RLIMIT_NOFILE %+v, %v", lim, err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// bash sets a low soft limit and starts the helper (exec -a sets
	// its argv[0]), as a parent whose own limit is low would.
	cmd := exec.Command("/bin/bash", "-c", `ulimit -Sn 100 && exec -a "$0" "$1" "$2" /bin/cat /bin/cat /proc/self/limits`,
		arg0, exe, Spec{CPU: 5}.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(strings.TrimPrefix(line, "Max open files")); len(f) >= 2 && line != "" && strings.HasPrefix(line, "Max open files") {
			if f[0] != "100" {
				t.Errorf("soft open files %s, want the 100 the helper started with", f[0])
			}
			return
		}
	}
	t.Errorf("no open files line in\n%s", out)
}

func TestHelperNice(t *testing.T) {
	cmd := exec.Command(Exe)
	cmd.Args = append(Spec{Nice: 7}.Prefix(), "/bin/sh", "/bin/sh", "-c", "cut -d' ' -f19 /proc/self/stat")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "7" {
		t.Errorf("nice = %q, want 7", got)
	}
}

func TestHelperFailure(t *testing.T) {
	cmd := exec.Command(Exe)
	cmd.Args = append(Spec{CPU: 1}.Prefix(), "/nonexistent/script", "/nonexistent/script")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 127 || !strings.Contains(string(out), "exec /nonexistent/script") {
		t.Errorf("err %v, output %q; want exit 127 naming the script", err, out)
	}
	cmd = exec.Command(Exe)
	cmd.Args = []string{arg0, "bogus=1", "/bin/true", "/bin/true"}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown limit") {
		t.Errorf("bad spec: err %v, output %q", err, out)
	}
}

// TestHelperOnlyByArgv0: the helper's argv[0] anywhere else (an
// environment variable a request could set, a later argument) leaves the
// binary what it is; here the test binary runs its tests (none).
func TestHelperOnlyByArgv0(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$", arg0, Spec{CPU: 1}.String(), "/bin/echo", "/bin/echo", "helper ran")
	cmd.Env = append(os.Environ(), "HTTP_X="+arg0, "ARGV0="+arg0)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "helper ran") || !strings.Contains(string(out), "PASS") {
		t.Errorf("err %v, output %q; want the test binary, not the helper", err, out)
	}
}
