package spawn

import (
	"slices"
	"strings"
	"testing"
)

func TestChildEnvironDropsSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("WATCHDOG_USEC", "1000")
	t.Setenv("JUNCTION_KEEP", "yes")
	env := childEnviron()
	if !slices.Contains(env, "JUNCTION_KEEP=yes") {
		t.Error("ordinary variable dropped")
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "WATCHDOG_USEC=") {
			t.Errorf("child would inherit %s", kv)
		}
	}
}
