package spawn

import (
	"os"
	"slices"
	"testing"
)

// TestChildEnvironAllowlist: an instance inherits PATH, LANG, TZ and what
// pass_env names, nothing else of junction's environment (a secret or
// systemd's NOTIFY_SOCKET stays with junction).
func TestChildEnvironAllowlist(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("WATCHDOG_USEC", "1000")
	t.Setenv("JUNCTION_SECRET", "s3cret")
	t.Setenv("APP_MODE", "prod")
	t.Setenv("LANG", "C.UTF-8")
	t.Setenv("PATH", "/usr/bin:/bin")
	env := childEnviron([]string{"APP_MODE", "NOT_SET_ANYWHERE", "PATH"})
	want := []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "APP_MODE=prod"}
	if tz, ok := lookupTZ(); ok {
		want = slices.Insert(want, 2, "TZ="+tz)
	}
	if !slices.Equal(env, want) {
		t.Errorf("child environment %q, want %q", env, want)
	}
}

func lookupTZ() (string, bool) { return os.LookupEnv("TZ") }
