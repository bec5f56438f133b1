package discovery

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/junction-gw/junction/internal/freeport"
	"github.com/junction-gw/junction/internal/syncbuf"
)

const dnsmasqBin = "/usr/sbin/dnsmasq" // Debian's dnsmasq-base: no service, no port 53

// startDNSMasq serves hosts (an /etc/hosts file's contents) and the
// --srv-host values on a free loopback port until the test ends, and
// returns its address. Names under .test it does not know get NXDOMAIN.
// A port taken between the pick and dnsmasq's bind (a test running beside
// this one) is picked again.
func startDNSMasq(t *testing.T, hosts string, srv ...string) string {
	t.Helper()
	if _, err := os.Stat(dnsmasqBin); err != nil {
		t.Skipf("dnsmasq not installed (apt-get install dnsmasq-base): %v", err)
	}
	file := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(file, []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	for try := 1; ; try++ {
		addr, out, err := runDNSMasq(t, file, srv)
		if err == nil {
			return addr
		}
		if try == 3 || !strings.Contains(out, "Address already in use") {
			t.Fatalf("dnsmasq on %s: %v:\n%s", addr, err, out)
		}
		t.Logf("dnsmasq on %s: port taken, picking another", addr)
	}
}

// runDNSMasq starts dnsmasq on a port from freeport and waits until it
// answers on TCP, or exits; it is stopped when the test ends.
func runDNSMasq(t *testing.T, hostsFile string, srv []string) (addr, output string, err error) {
	port := freeport.Port(t)
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"--no-daemon", fmt.Sprintf("--port=%d", port), "--listen-address=127.0.0.1",
		"--bind-interfaces", "--no-resolv", "--no-hosts", "--addn-hosts=" + hostsFile, "--local=/test/",
		"--pid-file=", "--log-queries", "--log-facility=-"}
	for _, s := range srv {
		args = append(args, "--srv-host="+s)
	}
	cmd := exec.Command(dnsmasqBin, args...)
	out := new(syncbuf.Buffer)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", out.String())
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, "", nil
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			return addr, out.String(), fmt.Errorf("exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return addr, out.String(), errors.New("not answering after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestResolverDialsServer asks a real DNS server through NewResolver's
// Dial: the A records of a name, SRV records with their targets' A
// records, and NXDOMAIN naming the configured server.
func TestResolverDialsServer(t *testing.T) {
	server := startDNSMasq(t, "127.0.0.3 app.test\n127.0.0.2 app.test\n127.0.0.4 n1.test\n127.0.0.5 n2.test\n"+
		"::1 dual.test\n127.0.0.6 dual.test\n",
		"_app._tcp.svc.test,n1.test,8081,0,20", "_app._tcp.svc.test,n2.test,8082,0,10",
		"_app._tcp.svc.test,n2.test,9000,3,1")
	got := names(lookup(t, Options{DNS: "app.test:8080", Server: server, Apply: nop}))
	if want := "127.0.0.2:8080=127.0.0.2:8080/w1 127.0.0.3:8080=127.0.0.3:8080/w1"; got != want {
		t.Errorf("dns: got %s, want %s", got, want)
	}
	got = names(lookup(t, Options{DNS: "dual.test:8080", Server: server, Apply: nop}))
	if want := "127.0.0.6:8080=127.0.0.6:8080/w1 [::1]:8080=[::1]:8080/w1"; got != want {
		t.Errorf("dns with A and AAAA: got %s, want %s", got, want)
	}
	got = names(lookup(t, Options{SRV: "_app._tcp.svc.test", Server: server, Apply: nop}))
	want := "n1.test:8081=127.0.0.4:8081/w20 n2.test:8082=127.0.0.5:8082/w10 n2.test:9000=127.0.0.5:9000/w1/backup"
	if got != want {
		t.Errorf("srv: got  %s\nwant %s", got, want)
	}
	w, err := New(Options{DNS: "nothing.test:80", Server: server, Apply: nop})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Lookup(t.Context()); err == nil || !strings.Contains(err.Error(), server) {
		t.Errorf("unknown name: %v, want an error naming %s", err, server)
	}
}
