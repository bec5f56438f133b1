package cgi

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopPid is a script's user at work against junction: it sends SIGSTOP
// to the process id HTTP_X_TARGET names until that succeeds, which is
// the moment junction's child took the user's identity (setuid), before
// it executes the script.
func stopPid() int {
	pid, err := strconv.Atoi(os.Getenv("HTTP_X_TARGET"))
	if err != nil {
		return 2
	}
	fmt.Println("ready")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		for range 1000 {
			if syscall.Kill(pid, syscall.SIGSTOP) == nil {
				return 0
			}
		}
	}
	return 1
}

// stoppedBeforeExec reports whether pid is this process's child, stopped,
// with this process's command line: stopped before its execve.
func stoppedBeforeExec(pid int) bool {
	self, err1 := os.ReadFile("/proc/self/cmdline")
	cmd, err2 := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err1 == nil && err2 == nil && bytes.Equal(cmd, self) && stoppedChild(strconv.Itoa(pid), strconv.Itoa(os.Getpid()))
}

// TestStoppedBeforeExec: the user a script runs as stops junction's child
// between its setuid and its execve, where syscall.ForkExec's vfork holds
// the starting thread. The request still ends: the child is killed and
// the request answered 502. Without limits the child would wait stopped
// for a SIGCONT, with them (the handshake traces it) for its tracer, the
// very thread that waits for it.
func TestStoppedBeforeExec(t *testing.T) {
	needRoot(t)
	// A uid no other process on the machine has: the stopper can signal
	// only the scripts of this test.
	const uid = 61771
	root := ownedTree(t, []ownedEntry{
		{path: "u", mode: os.ModeDir | 0o755, uid: uid, gid: uid},
		{path: "u/ok.cgi", mode: 0o755, uid: uid, gid: uid},
	})
	// The test binary, where the stopper's user can execute it.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := install(exe, root+"/stopper"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		limits Limits
	}{{"plain", Limits{}}, {"limits", Limits{OpenFiles: 64}}} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			b, logs := newBackend(t, func(o *Options) {
				o.Root, o.RunAsOwner, o.Limits, o.Timeout = root, true, tc.limits, 500*time.Millisecond
			})
			b.grace = 50 * time.Millisecond
			// The child's pid is chosen through ns_last_pid, so that the
			// stopper knows it in advance; a process elsewhere on the
			// machine may take it first, then the next attempt tries.
			for attempt := 0; !strings.Contains(logs.String(), "stopped before"); attempt++ {
				if attempt == 100 {
					t.Skip("the stopper never stopped junction's child before its execve")
				}
				stopBeforeExec(t, b, root+"/stopper", uid)
			}
		})
	}
}

// stopBeforeExec serves one request while a stopper running as uid tries
// to stop its script's process before its execve.
func stopBeforeExec(t *testing.T, b *Backend, stopperPath string, uid uint32) {
	t.Helper()
	last, err := os.ReadFile("/proc/sys/kernel/ns_last_pid")
	if err != nil {
		t.Skip(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(last)))
	// Ahead of what the machine may start meanwhile; back at the start
	// near pid_max.
	pid := n + 100
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if max, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > max-1000 {
			pid = 1000
		}
	}
	stopper := exec.Command(stopperPath)
	stopper.Env = []string{childEnv + "=1", "HTTP_X_MODE=stop-pid", "HTTP_X_TARGET=" + strconv.Itoa(pid)}
	stopper.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	ready, err := stopper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := stopper.Start(); err != nil {
		t.Fatal(err)
	}
	// Its loop runs before the child exists.
	if _, err := ready.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stopper.Process.Kill() // ErrProcessDone: it ended by itself
		_ = stopper.Wait()         // its status says nothing more
	}()
	if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/cgi-bin/u/ok.cgi", nil)) }()
	for {
		select {
		case <-done:
			return
		case <-time.After(10 * time.Millisecond):
		}
		if !stoppedBeforeExec(pid) {
			continue
		}
		// The child is stopped before its execve: the request must end
		// all the same.
		select {
		case <-done:
			return
		case <-time.After(30 * time.Second):
			if stoppedBeforeExec(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL) // the test's own child: not left behind
			}
			t.Fatalf("the request never ended: its script's process %d was stopped before its execve", pid)
		}
	}
}
