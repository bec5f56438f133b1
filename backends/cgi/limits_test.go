package cgi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
)

// limitsChild runs the test binary's script modes for limits; ok is
// false for a mode it does not know.
func limitsChild(mode string) (code int, ok bool) {
	head := "Content-Type: text/plain\r\n\r\n"
	switch mode {
	case "limits":
		lim, err := os.ReadFile("/proc/self/limits")
		stat, err2 := os.ReadFile("/proc/self/stat")
		if err != nil || err2 != nil {
			return 1, true
		}
		// Field 19 of stat, counted from 1, is the niceness.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		status, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return 1, true
		}
		_, tracer, _ := strings.Cut(string(status), "TracerPid:")
		tracer, _, _ = strings.Cut(strings.TrimSpace(tracer), "\n")
		fmt.Printf("%snice %s\ntracer %s\n%s", head, f[16], tracer, lim)
	case "spin":
		for {
		}
	case "mmap":
		// A Go program's runtime dies of a failed allocation (and needs
		// more than 256 MiB of address space to start at all); mapping
		// directly shows what a script sees: ENOMEM.
		_, err := syscall.Mmap(-1, 0, 2<<30, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		fmt.Printf("%smmap 2 GiB: %v\n", head, err)
	case "bigfile":
		f, err := os.CreateTemp("", "cgi-bigfile-")
		if err != nil {
			return 1, true
		}
		defer os.Remove(f.Name())
		_, err = f.Write(make([]byte, 2<<20))
		fmt.Printf("%swrite 2 MiB: %v\n", head, err)
	case "openfiles":
		n := 0
		var err error
		for ; n < 1000; n++ {
			if _, err = os.Open(os.DevNull); err != nil {
				break
			}
		}
		fmt.Printf("%sopened %d: %v\n", head, n, err)
	default:
		return 0, false
	}
	return 0, true
}

// limitOf returns the soft and hard value of a limit in the "limits"
// mode's output, by its name in /proc/self/limits.
func limitOf(body, name string) string {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				return f[0] + " " + f[1]
			}
		}
	}
	return ""
}

// TestLimitsApplied checks the limits a script starts with, both ways
// of starting it: the ptrace handshake and the helper it falls back to.
func TestLimitsApplied(t *testing.T) {
	checkLeaks(t)
	for _, helper := range []bool{false, true} {
		t.Run(fmt.Sprint("helper=", helper), func(t *testing.T) {
			lim := Limits{CPU: 7 * time.Second, Memory: 1 << 30, OpenFiles: 64, FileSize: 1 << 20, Nice: 5}
			if raceBuild {
				lim.Memory = 0
			}
			b, logs := newBackend(t, func(o *Options) { o.Limits = lim })
			b.noTrace.Store(helper)
			rec := httptest.NewRecorder()
			if err := b.Serve(rec, request("GET", "/cgi-bin/env.cgi", nil, "limits")); err != nil {
				t.Fatal(err)
			}
			body := rec.Body.String()
			for name, want := range map[string]string{
				"Max cpu time":      "7 8",
				"Max address space": "1073741824 1073741824",
				"Max open files":    "64 64",
				"Max file size":     "1048576 1048576",
			} {
				if raceBuild && name == "Max address space" {
					continue
				}
				if got := limitOf(body, name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if !strings.Contains(body, "nice 5\n") || !strings.Contains(body, "tracer 0\n") {
				t.Errorf("want niceness 5 and no tracer left:\n%s", body)
			}
			if b.noTrace.Load() != helper || strings.Contains(logs.String(), "ptrace") {
				t.Errorf("fell back to the helper: %v\n%s", b.noTrace.Load(), logs)
			}
		})
	}
	// A backend without limits starts scripts directly, with what
	// junction has.
	plain, _ := newBackend(t, nil)
	rec := httptest.NewRecorder()
	if err := plain.Serve(rec, request("GET", "/cgi-bin/env.cgi", nil, "limits")); err != nil {
		t.Fatal(err)
	}
	if got := limitOf(rec.Body.String(), "Max cpu time"); got != "unlimited unlimited" {
		t.Errorf("unlimited backend: Max cpu time %q", got)
	}
}

func TestLimitsInsideScript(t *testing.T) {
	checkLeaks(t)
	for _, tt := range []struct {
		mode   string
		limits Limits
		want   string
	}{
		{"mmap", Limits{Memory: 1 << 30}, "mmap 2 GiB: cannot allocate memory"},
		{"bigfile", Limits{FileSize: 1 << 20}, "write 2 MiB: write /"},
		{"openfiles", Limits{OpenFiles: 16}, ": too many open files"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			if raceBuild && tt.limits.Memory != 0 {
				t.Skip("the race runtime cannot start under a memory limit")
			}
			b, _ := newBackend(t, func(o *Options) { o.Limits = tt.limits })
			rec := httptest.NewRecorder()
			if err := b.Serve(rec, request("GET", "/cgi-bin/env.cgi", nil, tt.mode)); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(rec.Body.String(), tt.want) {
				t.Errorf("body %q, want it to say %q", rec.Body, tt.want)
			}
			if tt.mode == "bigfile" && !strings.Contains(rec.Body.String(), "file too large") {
				t.Errorf("body %q, want EFBIG", rec.Body)
			}
		})
	}
}

func TestCPULimitKills(t *testing.T) {
	checkLeaks(t)
	obs := &fakeObserver{}
	b, logs := newBackend(t, func(o *Options) { o.Limits = Limits{CPU: time.Second}; o.Observer = obs; o.Timeout = 30 * time.Second })
	start := time.Now()
	err := b.Serve(httptest.NewRecorder(), request("GET", "/cgi-bin/env.cgi", nil, "spin"))
	if backends.Status(err) != http.StatusBadGateway {
		t.Fatalf("err = %v, want 502", err)
	}
	if time.Since(start) > 25*time.Second {
		t.Errorf("the script ran until its timeout, not its CPU limit")
	}
	// The Go runtime ignores SIGXCPU; the kernel's SIGKILL a second
	// later ends it.
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.signaled) != 1 || obs.signaled[0] != "SIGKILL" || obs.timedOut != 0 {
		t.Errorf("signaled %q, timed out %d; want SIGKILL only", obs.signaled, obs.timedOut)
	}
	if !strings.Contains(logs.String(), "signal: SIGKILL") {
		t.Errorf("log does not name the signal:\n%s", logs)
	}
}

func TestLimitsErrors(t *testing.T) {
	for _, tt := range []struct {
		l    Limits
		want string
	}{
		{Limits{CPU: 1500 * time.Millisecond}, "limits.cpu: 1.5s is not a whole number of seconds"},
		{Limits{CPU: -time.Second}, "limits.cpu: -1s must not be negative"},
		{Limits{Nice: 20}, "limits.nice: 20 is outside 1..19"},
		{Limits{Memory: -1}, "limits.memory: -1 must not be negative"},
		// Scripts run as junction here: RLIMIT_NPROC would count
		// junction's own threads (and not bind root).
		{Limits{Processes: 10}, "limits.processes: needs user naming a user other than junction's own"},
	} {
		_, err := New(Options{Name: "x", Root: testRoot, Limits: tt.l})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err %v, want %q", tt.l, err, tt.want)
		}
	}
	if !capResource() {
		var cur syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur); err == nil && cur.Max < 1<<40 {
			_, err := New(Options{Name: "x", Root: testRoot, Limits: Limits{OpenFiles: int(cur.Max) + 1}})
			if err == nil || !strings.Contains(err.Error(), "limits.open_files") {
				t.Errorf("open_files above the hard limit: err %v", err)
			}
		}
	}
}

func TestRouteOverrides(t *testing.T) {
	checkLeaks(t)
	b, _ := newBackend(t, func(o *Options) {
		o.MaxConcurrent, o.MaxQueue = 4, 0
		o.Limits = Limits{OpenFiles: 64}
	})

	t.Run("limits field by field", func(t *testing.T) {
		rt, err := b.Route(RouteOptions{Limits: Limits{Nice: 5}})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		if err := rt.Serve(rec, request("GET", "/cgi-bin/env.cgi", nil, "limits")); err != nil {
			t.Fatal(err)
		}
		if got := limitOf(rec.Body.String(), "Max open files"); got != "64 64" || !strings.Contains(rec.Body.String(), "nice 5\n") {
			t.Errorf("open files %q, want the backend's 64 and the route's nice 5:\n%s", got, rec.Body)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		rt, err := b.Route(RouteOptions{Timeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		b.grace = 200 * time.Millisecond
		err = rt.Serve(httptest.NewRecorder(), request("GET", "/cgi-bin/env.cgi", nil, "sleep"))
		if backends.Status(err) != http.StatusGatewayTimeout || !strings.Contains(err.Error(), "after 500ms") {
			t.Errorf("err = %v, want 504 after the route's 500ms", err)
		}
	})

	t.Run("max_concurrent inside the backend's", func(t *testing.T) {
		rt, err := b.Route(RouteOptions{MaxConcurrent: 1})
		if err != nil {
			t.Fatal(err)
		}
		pidfile := filepath.Join(t.TempDir(), "pid")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := request("GET", "/cgi-bin/env.cgi", nil, "sleep").WithContext(ctx)
		r.Header.Set("X-Pidfile", pidfile)
		errc := make(chan error, 1)
		go func() { errc <- rt.Serve(httptest.NewRecorder(), r) }()
		readPids(t, pidfile)
		if st := b.Stats(); st.InUse != 1 {
			t.Errorf("backend in use %d, want the route's script counted", st.InUse)
		}
		if err := rt.Serve(httptest.NewRecorder(), request("GET", "/cgi-bin/env.cgi", nil, "nostatus")); !errors.Is(err, backends.ErrOverloaded) {
			t.Errorf("second request on the route: %v, want ErrOverloaded", err)
		}
		// The backend's other requests still run.
		if err := b.Serve(httptest.NewRecorder(), request("GET", "/cgi-bin/env.cgi", nil, "nostatus")); err != nil {
			t.Errorf("request outside the route: %v", err)
		}
		cancel()
		<-errc
		if err := rt.Serve(httptest.NewRecorder(), request("GET", "/cgi-bin/env.cgi", nil, "nostatus")); err != nil {
			t.Errorf("after the route's script ended: %v", err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, o := range []RouteOptions{
			{MaxConcurrent: 5},
			{MaxConcurrent: -1},
			{Timeout: -time.Second},
			{Limits: Limits{CPU: 10 * time.Millisecond}},
		} {
			if _, err := b.Route(o); err == nil {
				t.Errorf("Route(%+v) accepted", o)
			}
		}
	})
}

func TestTraceable(t *testing.T) {
	other := &syscall.Credential{Uid: uint32(os.Getuid()) + 1, Gid: uint32(os.Getgid()) + 1}
	own := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	for _, tt := range []struct {
		anyUser, noTrace bool
		cred             *syscall.Credential
		want             bool
	}{
		{false, false, nil, true},
		{false, false, own, true},
		{false, false, other, false}, // prlimit on another user needs CAP_SYS_RESOURCE
		{true, false, other, true},
		{true, true, nil, false}, // ptrace was refused once
	} {
		var noTrace atomic.Bool
		noTrace.Store(tt.noTrace)
		l := &limiter{anyUser: tt.anyUser, noTrace: &noTrace}
		if got := l.traceable(tt.cred); got != tt.want {
			t.Errorf("anyUser %v noTrace %v cred %+v: traceable %v, want %v", tt.anyUser, tt.noTrace, tt.cred, got, tt.want)
		}
	}
}

// BenchmarkServeHelloLimits is BenchmarkServeHello with limits set,
// started by the ptrace handshake and by the helper it falls back to.
func BenchmarkServeHelloLimits(b *testing.B) {
	for _, helper := range []bool{false, true} {
		b.Run(fmt.Sprint("helper=", helper), func(b *testing.B) {
			_, root := benchBackend(b)
			be, err := New(Options{Name: "bench", Root: root, Logger: slog.New(slog.DiscardHandler),
				Limits: Limits{CPU: 10 * time.Second, Memory: 512 << 20, OpenFiles: 256, FileSize: 10 << 20, Nice: 5}})
			if err != nil {
				b.Fatal(err)
			}
			be.noTrace.Store(helper)
			for b.Loop() {
				rec := httptest.NewRecorder()
				if err := be.Serve(rec, httptest.NewRequest("GET", "/hello.cgi", nil)); err != nil || rec.Body.String() != "hi" {
					b.Fatalf("%v %q", err, rec.Body)
				}
			}
		})
	}
}
