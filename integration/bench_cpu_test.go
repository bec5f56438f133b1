package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The CGI benchmarks (bench_test.go, bench_fastcgi_test.go) compare a
// gateway with the fork+exec ceiling, measured by a bare spawn loop that
// has no nginx and no wrk on the machine. Through nginx, every request
// also pays nginx's CPU and wrk's, on the same cores, so not even a
// gateway as cheap as the spawn loop itself could reach the ceiling. The
// helpers here put a number on that: the zero-overhead bound.

// spawnCeiling is what forkExecRate measured.
type spawnCeiling struct {
	// Rate is scripts run per second.
	Rate float64
	// LoopCPU is the spawn loop's own CPU time (the test process, the
	// scripts excluded) per script run.
	LoopCPU time.Duration
	// Others is the share of the machine (all cores) that processes other
	// than the test and its scripts used meanwhile.
	Others float64
}

// machineCPU returns the CPU time all cores spent busy so far (user, nice,
// system, irq, softirq, steal in /proc/stat), for telling how much of a
// run's machine went to processes outside the measured ones: another
// engineer's load on a shared machine.
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("machine cpu: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("machine cpu: unexpected /proc/stat line %q", line)
	}
	var ticks int64
	// user nice system idle iowait irq softirq steal: all but idle, iowait.
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("machine cpu: /proc/stat field %d: %w", i, err)
		}
		ticks += n
	}
	// USER_HZ, as in groupCPU.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// othersShare is the share of cores×wall that busy CPU time not accounted
// for by known went to: other processes on the machine. It is never
// negative (tick rounding can make known exceed busy a little).
func othersShare(busy, known, wall time.Duration, cores int) float64 {
	if wall <= 0 || cores <= 0 || busy <= known {
		return 0
	}
	return float64(busy-known) / (float64(wall) * float64(cores))
}

// groupIgnoresSIGCHLD reports whether a live process of group pgid
// ignores SIGCHLD. Its exited children are then reaped by the kernel
// without being waited for, so their CPU time is in no process's
// cutime/cstime and cannot be told apart from other processes' (fcgiwrap's
// workers do this).
func groupIgnoresSIGCHLD(pgid int) bool {
	ignores := false
	forGroup(pgid, func(pid string, _ []string) bool {
		st, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil {
			return true
		}
		for _, line := range strings.Split(string(st), "\n") {
			hex, ok := strings.CutPrefix(line, "SigIgn:")
			if !ok {
				continue
			}
			mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err == nil && mask&(1<<(uint(syscall.SIGCHLD)-1)) != 0 {
				ignores = true
				return false
			}
		}
		return true
	})
	return ignores
}

// othersCell formats an Others share; negative means not measurable.
func othersCell(share float64) string {
	if share < 0 {
		return "unknown (its scripts are reaped unwaited)"
	}
	return fmt.Sprintf("%.0f%%", 100*share)
}

// selfCPU returns the user+system CPU time of the test process so far, all
// its threads, without its reaped children.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// childrenCPU returns the user+system CPU time of the test process's
// reaped children so far (the scripts forkExecRate ran).
func childrenCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0, fmt.Errorf("getrusage children: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// zeroOverheadBound is the request rate a gateway costing no more CPU than
// the bare spawn loop would reach at most with cores cores: each request
// takes the 2-core time one spawn took in the loop (cores/ceiling, which
// already holds the loop's own CPU), plus nginx's and wrk's CPU per
// request. It is 0 when ceiling is not positive.
func zeroOverheadBound(cores int, ceiling float64, nginx, wrk time.Duration) float64 {
	if ceiling <= 0 || cores <= 0 {
		return 0
	}
	perReq := float64(cores)/ceiling + nginx.Seconds() + wrk.Seconds()
	return float64(cores) / perReq
}

func TestOthersShare(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name              string
		busy, known, wall time.Duration
		cores             int
		want              float64
	}{
		{"idle others", 1000 * ms, 1000 * ms, 1000 * ms, 2, 0},
		{"one core of two", 2000 * ms, 1000 * ms, 1000 * ms, 2, 0.5},
		{"rounding", 990 * ms, 1000 * ms, 1000 * ms, 2, 0},
		{"no wall", 10 * ms, 0, 0, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := othersShare(tt.busy, tt.known, tt.wall, tt.cores); got != tt.want {
				t.Errorf("othersShare(%v, %v, %v, %d) = %v, want %v", tt.busy, tt.known, tt.wall, tt.cores, got, tt.want)
			}
		})
	}
}

func TestZeroOverheadBound(t *testing.T) {
	us := time.Microsecond
	tests := []struct {
		name       string
		cores      int
		ceiling    float64
		nginx, wrk time.Duration
		want       float64
	}{
		// Nothing beside the spawns: the bound is the ceiling.
		{"no front", 2, 2000, 0, 0, 2000},
		// 1 ms of 2-core time per spawn plus 1 ms of CPU per request:
		// 2 cores / 2 ms.
		{"half", 2, 2000, 900 * us, 100 * us, 1000},
		{"one core", 1, 1000, 1000 * us, 0, 500},
		{"no ceiling", 2, 0, 90 * us, 20 * us, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := zeroOverheadBound(tt.cores, tt.ceiling, tt.nginx, tt.wrk)
			if diff := got - tt.want; diff > 1e-6 || diff < -1e-6 {
				t.Errorf("zeroOverheadBound(%d, %v, %v, %v) = %v, want %v", tt.cores, tt.ceiling, tt.nginx, tt.wrk, got, tt.want)
			}
		})
	}
}

// boundLine says, for one script, how far a gateway costing no more than
// the spawn loop could get through nginx under wrk (nginx's and wrk's CPU
// as measured in junction's runs, j), next to the reference runner
// (refName, measured as ref), and what junction costs per request beyond
// the loop's CPU per spawn.
func boundLine(script string, cores int, c spawnCeiling, j wrkResult, refName string, ref wrkResult) string {
	bound := zeroOverheadBound(cores, c.Rate, j.FrontCPUPerReq, j.WrkCPUPerReq)
	var s strings.Builder
	us := time.Microsecond
	fmt.Fprintf(&s, "%s bound: a gateway costing no more CPU than a bare spawn loop would reach at most %.0f req/s", script, bound)
	if ref.RPS > 0 {
		fmt.Fprintf(&s, " = %.2fx %s", bound/ref.RPS, refName)
	}
	if c.Rate > 0 {
		fmt.Fprintf(&s, ", %.0f%% of the ceiling", 100*bound/c.Rate)
	}
	var spawn time.Duration
	if c.Rate > 0 {
		spawn = time.Duration(float64(cores) / c.Rate * float64(time.Second))
	}
	fmt.Fprintf(&s, "\n    (%d cores / (%v of %d-core time per spawn + nginx %v + wrk %v CPU per request))",
		cores, spawn.Round(us), cores, j.FrontCPUPerReq.Round(us), j.WrkCPUPerReq.Round(us))
	if bound > 0 {
		fmt.Fprintf(&s, "; junction %.0f req/s = %.0f%% of it", j.RPS, 100*j.RPS/bound)
	}
	fmt.Fprintf(&s, "\n    junction's CPU per request %v = the spawn loop's %v per spawn + %v beyond it",
		j.CPUPerReq.Round(us), c.LoopCPU.Round(us), (j.CPUPerReq - c.LoopCPU).Round(us))
	fmt.Fprintf(&s, "; in %s's runs nginx %v, wrk %v per request", refName, ref.FrontCPUPerReq.Round(us), ref.WrkCPUPerReq.Round(us))
	fmt.Fprintf(&s, "\n    other processes used %s of the machine during the ceiling run, %s during junction's, %s during %s's\n",
		othersCell(c.Others), othersCell(j.Others), othersCell(ref.Others), refName)
	return s.String()
}

func TestGroupIgnoresSIGCHLD(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   bool
	}{
		// An ignored signal stays ignored across exec. bash, because
		// dash's trap "" CHLD leaves the disposition alone.
		{"ignores", `trap "" CHLD; exec sleep 30`, true},
		{"waits", `exec sleep 30`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("/bin/bash", "-c", tt.script)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
			}()
			pid := cmd.Process.Pid
			// Once bash has exec'd sleep, its dispositions are final.
			if !waitFor(5*time.Second, func() bool {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
				return err == nil && strings.TrimSpace(string(b)) == "sleep"
			}) {
				t.Fatal("bash did not exec sleep")
			}
			if got := groupIgnoresSIGCHLD(pid); got != tt.want {
				t.Errorf("groupIgnoresSIGCHLD = %v, want %v", got, tt.want)
			}
		})
	}
}
