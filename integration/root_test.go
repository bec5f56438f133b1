package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestRootNeedsAllowRoot: as root, junction refuses to run scripts as root
// unless the backend opts in with allow_root (then it warns), as php-fpm
// refuses without -R. Not as root, allow_root changes nothing and is quiet.
func TestRootNeedsAllowRoot(t *testing.T) {
	root := newSite(t).Root
	conf := func(extra string) string {
		return writeFile(t, t.TempDir(), "junction.yaml", fmt.Sprintf(`listeners:
  - {protocol: scgi, address: %q, backend: scripts}
backends:
  scripts: {type: cgi, root: %q%s}
`, freeAddr(t), root, extra))
	}
	plain, allowed := conf(""), conf(", allow_root: true")

	out, err := junctionCommand(t, "check", "-c", allowed).CombinedOutput()
	if os.Geteuid() == 0 {
		if err != nil || string(out) != "warning: backends.scripts.allow_root: scripts run as root\nok\n" {
			t.Errorf("check with allow_root as root: %v\n%s", err, out)
		}
	} else if err != nil || string(out) != "ok\n" {
		t.Errorf("check with allow_root, not as root: %v\n%s", err, out)
	}

	out, err = junctionCommand(t, "check", "-c", plain).CombinedOutput()
	if os.Geteuid() != 0 {
		if err != nil || string(out) != "ok\n" {
			t.Errorf("check not as root: %v\n%s", err, out)
		}
		return
	}
	if err == nil || !strings.Contains(string(out), "backends.scripts: junction runs as root") {
		t.Errorf("check without allow_root as root: %v\n%s", err, out)
	}
	// serve refuses to start at all, naming the backend and the key.
	out, err = junctionCommand(t, "serve", "-c", plain).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "backends.scripts") || !strings.Contains(string(out), "allow_root") {
		t.Errorf("serve without allow_root as root: %v\n%s", err, out)
	}
}
