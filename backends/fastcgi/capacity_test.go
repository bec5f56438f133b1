package fastcgi

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/fastcgi/fpmtest"
	"github.com/junction-gw/junction/internal/fcgiwire"
)

// The status pages of php-fpm 8.2 (Debian's php8.2-fpm) with pm = static
// and pm = dynamic, as it answered "?json" and "?json&full".
const (
	fpmStaticFullJSON = `{"pool":"cap","process manager":"static","start time":1796579309,"start since":0,"accepted conn":2,"listen queue":0,"max listen queue":0,"listen queue len":0,"idle processes":1,"active processes":1,"total processes":2,"max active processes":1,"max children reached":0,"slow requests":0, "processes":[{"pid":3052,"state":"Idle","start time":1796579309,"start since":0,"requests":1,"request duration":0,"request method":"-","request uri":"-","content length":0,"user":"-","script":"-","last request cpu":0.00,"last request memory":0},{"pid":3053,"state":"Running","start time":1796579309,"start since":0,"requests":1,"request duration":362,"request method":"GET","request uri":"\/fpm-status?json&full","content length":0,"user":"-","script":"-","last request cpu":0.00,"last request memory":0}]}`
	// Under keep-alive load: "active processes" far beyond the 3 workers
	// listed (php-fpm corrects it once a second).
	fpmStaticDriftJSON = `{"pool":"cap","process manager":"static","start time":1796579309,"start since":3,"accepted conn":81,"listen queue":0,"max listen queue":0,"listen queue len":0,"idle processes":0,"active processes":71,"total processes":71,"max active processes":71,"max children reached":0,"slow requests":0, "processes":[{"pid":1,"state":"Running"},{"pid":2,"state":"Running"},{"pid":3,"state":"Idle"}]}`
	fpmDynamicFullJSON = `{"pool":"cap","process manager":"dynamic","start time":1796579309,"start since":1,"accepted conn":2,"listen queue":0,"max listen queue":0,"listen queue len":0,"idle processes":0,"active processes":1,"total processes":1,"max active processes":1,"max children reached":0,"slow requests":0, "processes":[{"pid":3077,"state":"Running","start time":1796579309,"start since":1,"requests":2,"request duration":449,"request method":"GET","request uri":"\/fpm-status?json&full","content length":0,"user":"-","script":"-","last request cpu":0.00,"last request memory":0}]}`
	fpmStaticJSON      = `{"pool":"cap","process manager":"static","start time":1796578883,"start since":0,"accepted conn":3,"listen queue":0,"max listen queue":0,"listen queue len":0,"idle processes":2,"active processes":1,"total processes":3,"max active processes":2,"max children reached":0,"slow requests":0}`
	fpmDynamicJSON     = `{"pool":"cap","process manager":"dynamic","start time":1796578883,"start since":0,"accepted conn":3,"listen queue":0,"max listen queue":0,"listen queue len":0,"idle processes":0,"active processes":1,"total processes":1,"max active processes":1,"max children reached":0,"slow requests":0}`
)

func TestParseFPMStatus(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       backends.Capacity
		err        string
	}{
		{"static", fpmStaticJSON, backends.Capacity{Max: 3, Idle: 2, Source: "status page"}, ""},
		{"static full", fpmStaticFullJSON, backends.Capacity{Max: 2, Idle: 1, Source: "status page"}, ""},
		{"static full, counters adrift", fpmStaticDriftJSON, backends.Capacity{Max: 3, Idle: 1, Source: "status page"}, ""},
		{"dynamic full", fpmDynamicFullJSON, backends.Capacity{Idle: 0, Source: "status page",
			Why: "pm = dynamic: php-fpm reports the workers running, not pm.max_children"}, ""},
		{"dynamic", fpmDynamicJSON, backends.Capacity{Idle: 0, Source: "status page",
			Why: "pm = dynamic: php-fpm reports the workers running, not pm.max_children"}, ""},
		{"ondemand", `{"process manager":"ondemand","idle processes":0,"total processes":0}`, backends.Capacity{Idle: 0, Source: "status page",
			Why: "pm = ondemand: php-fpm reports the workers running, not pm.max_children"}, ""},
		{"max children reported", `{"process manager":"dynamic","max children":12,"total processes":3,"idle processes":1}`,
			backends.Capacity{Max: 12, Idle: 1, Source: "status page"}, ""},
		{"static without total", `{"process manager":"static"}`, backends.Capacity{Idle: -1, Source: "status page",
			Why: "pm = static without total processes"}, ""},
		{"not php-fpm's", `{"status":"ok"}`, backends.Capacity{}, `no "process manager"`},
		{"text page", "pool: www\nprocess manager: static\n", backends.Capacity{}, "not php-fpm's JSON"},
		{"wrong type", `{"process manager":"static","total processes":"3"}`, backends.Capacity{}, "not php-fpm's JSON"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFPMStatus([]byte(tt.body))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParsePairs(t *testing.T) {
	long := strings.Repeat("x", 200)
	ok := fcgiwire.AppendPair(fcgiwire.AppendPair(nil, "FCGI_MAX_CONNS", "4"), "LONG", long)
	vals, err := parsePairs(ok)
	if err != nil || vals["FCGI_MAX_CONNS"] != "4" || vals["LONG"] != long || len(vals) != 2 {
		t.Fatalf("parsePairs = %q, %v", vals, err)
	}
	for _, bad := range [][]byte{
		{14},                    // no value length
		{14, 1, 'F'},            // name shorter than its length
		{0x80, 0, 0},            // truncated 4-byte length
		{1, 0x80, 0, 0, 9, 'a'}, // value longer than the record
	} {
		if vals, err := parsePairs(bad); err == nil {
			t.Errorf("parsePairs(%v) = %q, want an error", bad, vals)
		}
	}
}

// valuesServer answers every connection's GET_VALUES with content and
// closes it.
func valuesServer(t *testing.T, content []byte) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "v.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1024)
			_, _ = c.Read(buf) // the GET_VALUES record
			_, _ = c.Write(fcgiwire.AppendRecord(nil, fcgiwire.TypeGetValuesResult, 0, content, fcgiwire.PadFor(len(content))))
			c.Close()
		}
	}()
	return "unix:" + sock
}

func TestValuesCapacity(t *testing.T) {
	pairs := func(kv ...string) []byte {
		var b []byte
		for i := 0; i < len(kv); i += 2 {
			b = fcgiwire.AppendPair(b, kv[i], kv[i+1])
		}
		return b
	}
	for _, tt := range []struct {
		name    string
		content []byte
		max     int
		err     string
	}{
		{"both", pairs("FCGI_MAX_CONNS", "4", "FCGI_MAX_REQS", "4", "FCGI_MPXS_CONNS", "0"), 4, ""},
		{"the smaller", pairs("FCGI_MAX_CONNS", "10", "FCGI_MAX_REQS", "6"), 6, ""},
		{"conns only", pairs("FCGI_MAX_CONNS", "7"), 7, ""},
		{"php-fpm", pairs("FCGI_MPXS_CONNS", "0"), 0, ""},
		{"not a number", pairs("FCGI_MAX_CONNS", "lots"), 0, `FCGI_MAX_CONNS "lots" is not a positive number`},
		{"zero", pairs("FCGI_MAX_REQS", "0"), 0, "not a positive number"},
		{"malformed", []byte{14, 1}, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(Options{Addr: valuesServer(t, tt.content), Root: "/srv"})
			if err != nil {
				t.Fatal(err)
			}
			c, err := b.Capacity(context.Background())
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || c.Max != tt.max || c.Source != "FCGI_GET_VALUES" || c.Idle != -1 || (c.Max == 0) != (c.Why != "") {
				t.Fatalf("Capacity = %+v, %v; want Max %d", c, err, tt.max)
			}
		})
	}
}

// TestCapacityPHPFPM asks real php-fpm pools: pm = static tells its
// capacity on the status page, pm = dynamic does not, and neither answers
// FCGI_MAX_CONNS.
func TestCapacityPHPFPM(t *testing.T) {
	if _, err := os.Stat(phpFPM); err != nil {
		t.Skipf("%s not installed (Debian package php8.2-fpm): %v", phpFPM, err)
	}
	for _, tt := range []struct {
		name, extra string
		max         int
		why         string
	}{
		{"static", "pm.status_path = /fpm-status\n", 3, ""},
		{"dynamic", "pm = dynamic\npm.start_servers = 1\npm.min_spare_servers = 1\npm.max_spare_servers = 2\npm.status_path = /fpm-status\n", 0, "pm = dynamic"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, root, stop, err := runFPM(fpmtest.Pool{Name: "cap", Children: 3, Extra: tt.extra})
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := New(Options{Addr: addr, Root: root, StripPrefix: "/php", StatusPath: "/fpm-status", KeepAlive: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			// php-fpm listens before it has forked every static worker:
			// right after its start total processes may still be short.
			var c backends.Capacity
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if c, err = b.Capacity(ctx); err != nil || c.Max == tt.max || time.Now().After(deadline) {
					break
				}
			}
			if err != nil || c.Max != tt.max || c.Source != "status page" || c.Idle < 0 || !strings.Contains(c.Why, tt.why) {
				t.Errorf("status page: %+v, %v; want Max %d", c, err, tt.max)
			}
			b, err = New(Options{Addr: addr, Root: root})
			if err != nil {
				t.Fatal(err)
			}
			if c, err := b.Capacity(ctx); err != nil || c.Max != 0 || !strings.Contains(c.Why, "neither FCGI_MAX_CONNS nor FCGI_MAX_REQS") {
				t.Errorf("GET_VALUES: %+v, %v; want no capacity", c, err)
			}
			// A status path php-fpm does not serve is a 404 ("File not
			// found."), reported as such.
			b, err = New(Options{Addr: addr, Root: root, StatusPath: "/nope"})
			if err != nil {
				t.Fatal(err)
			}
			if c, err := b.Capacity(ctx); err == nil || !strings.Contains(err.Error(), "status 404") {
				t.Errorf("wrong status path: %+v, %v; want a 404 error", c, err)
			}
		})
	}
}

// TestCapacityPHPCGI asks php-cgi -b, whose FastCGI code answers
// FCGI_MAX_CONNS and FCGI_MAX_REQS with PHP_FCGI_CHILDREN.
func TestCapacityPHPCGI(t *testing.T) {
	const phpCGI = "/usr/bin/php-cgi"
	if _, err := os.Stat(phpCGI); err != nil {
		t.Skipf("%s not installed (Debian package php-cgi): %v", phpCGI, err)
	}
	sock := filepath.Join(t.TempDir(), "cgi.sock")
	cmd := exec.Command(phpCGI, "-b", sock)
	cmd.Env = []string{"PHP_FCGI_CHILDREN=4", "PATH=/usr/bin:/bin"}
	// Its own process group: the children outlive a killed parent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	b, err := New(Options{Addr: "unix:" + sock, Root: "/srv"})
	if err != nil {
		t.Fatal(err)
	}
	var c backends.Capacity
	// php-cgi binds its socket after start-up: ask until it answers.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err = b.Capacity(context.Background()); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || c.Max != 4 || c.Source != "FCGI_GET_VALUES" {
		t.Fatalf("php-cgi -b with PHP_FCGI_CHILDREN=4: %+v, %v; want Max 4", c, err)
	}
}
