package integration

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hup rewrites junction's config file and sends SIGHUP, then waits for
// the outcome in the log: "reloaded" or "reload failed".
func hup(t *testing.T, j *junctionProc, yaml, want string) {
	t.Helper()
	before := strings.Count(j.Output(), want)
	if err := os.WriteFile(j.Config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := j.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { return strings.Count(j.Output(), want) > before }) {
		t.Fatalf("no %q after SIGHUP; junction log:\n%s", want, j.Output())
	}
}

func TestReloadUnderLoad(t *testing.T) {
	bin := needApp(t)
	a1, _ := startAppInstance(t, "old1")
	b1, _ := startAppInstance(t, "new1")
	scgi := freeAddr(t)
	conf := func(backend string) string {
		return fmt.Sprintf(`
listeners:
  - {protocol: scgi, address: %q, backend: %s}
backends:
  a: {type: http, instances: [%q]}
  b: {type: http, instances: [%q]}
  s:
    type: http
    spawn: {command: [%q, -addr, "127.0.0.1:{port}", -name, "%s{index}"], count: 2}
`, scgi, backend, a1, b1, bin, map[string]string{"a": "sp", "b": "sp", "s": "sp", "s2": "rolled"}[backend])
	}
	j := startJunction(t, conf("a"), scgi)
	url := "http://" + nginxSCGI(t, scgi) + "/r"

	t.Run("switch pool", func(t *testing.T) {
		l := startLoad(t, url, 6)
		time.Sleep(300 * time.Millisecond)
		hup(t, j, conf("b"), "msg=reloaded")
		time.Sleep(300 * time.Millisecond)
		seen := l.finish(t)
		if seen["old1"] == 0 || seen["new1"] == 0 {
			t.Errorf("answers = %v, want old1 then new1", seen)
		}
		if got := answerer(url); got != "new1" {
			t.Errorf("after reload answered by %q, want new1", got)
		}
	})
	t.Run("spawned pool rolling", func(t *testing.T) {
		hup(t, j, conf("s"), "msg=reloaded")
		if got := answerer(url); !strings.HasPrefix(got, "sp") {
			t.Fatalf("after switching to the spawned pool answered by %q", got)
		}
		l := startLoad(t, url, 6)
		time.Sleep(300 * time.Millisecond)
		// Same pool, new command: a rolling replacement.
		next := strings.Replace(conf("s"), `"sp{index}"`, `"rolled{index}"`, 1)
		hup(t, j, next, "msg=reloaded")
		time.Sleep(300 * time.Millisecond)
		seen := l.finish(t)
		if seen["rolled0"]+seen["rolled1"] == 0 {
			t.Errorf("answers = %v, want rolled instances", seen)
		}
		for range 4 {
			if got := answerer(url); !strings.HasPrefix(got, "rolled") {
				t.Errorf("after rolling answered by %q", got)
			}
		}
		if len(appPids("sp0"))+len(appPids("sp1")) != 0 {
			t.Errorf("old spawned instances still running: %v %v", appPids("sp0"), appPids("sp1"))
		}
		if !strings.Contains(j.Output(), "replacing spawned instances") {
			t.Error("no rolling replacement in the log")
		}
	})
	t.Run("broken config keeps serving", func(t *testing.T) {
		l := startLoad(t, url, 3)
		hup(t, j, "listeners: [{protocol: gopher}]\nbackends: {x: {type: http, root: /srv}}\n", "reload failed")
		seen := l.finish(t)
		if len(seen) == 0 {
			t.Error("no answers")
		}
		line := ""
		for _, ln := range strings.Split(j.Output(), "\n") {
			if strings.Contains(ln, "reload failed") {
				line = ln
			}
		}
		for _, want := range []string{"listeners[0].protocol", "backends.x.root", "backends.x.instances"} {
			if !strings.Contains(line, want) {
				t.Errorf("reload error line does not name %s:\n%s", want, line)
			}
		}
		if got := answerer(url); !strings.HasPrefix(got, "rolled") {
			t.Errorf("after a failed reload answered by %q", got)
		}
	})
}
