package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium is Debian's headless browser (.ci/deps installs it).
const chromium = "/usr/bin/chromium"

// chromiumArgs keep the browser from phoning home or touching the
// machine's profile.
func chromiumArgs(t *testing.T, extra ...string) []string {
	return append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}, extra...)
}

func runChromium(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, chromiumArgs(t, args...)...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, tail(stderr.String(), 4096))
	}
	return string(out)
}

// TestStatusPageInBrowser renders /status in a real headless browser after
// traffic through nginx, with a pool of two live instances and a dead one
// (ejected by passive health), and a CGI backend. The DOM must show the
// pools and instance states; the phone-sized screenshot is kept under
// integration/artifacts/.
func TestStatusPageInBrowser(t *testing.T) {
	needBin(t, chromium, "chromium")
	s := newSite(t)
	one, _ := startAppInstance(t, "one")
	two, _ := startAppInstance(t, "two")
	dead := freeAddr(t) // nothing listens there
	scgiAddr, ops := freeAddr(t), freeAddr(t)
	startJunction(t, fmt.Sprintf(`metrics: {address: %q}
listeners:
  - {protocol: scgi, address: %q, backend: app}
routes:
  - {prefix: /cgi-bin/, backend: scripts}
backends:
  app:
    type: http
    instances: [%q, %q, %q]
    health: {fail_threshold: 2, eject_base: 5m, eject_max: 5m}
  scripts: {type: cgi, allow_root: true, root: %q, url_prefix: /cgi-bin/, max_concurrent: 8}
`, ops, scgiAddr, one, two, dead, s.Root), scgiAddr, ops)
	front := "http://" + nginxSCGI(t, scgiAddr)
	for i := range 12 {
		if r := httpGet(t, front+"/page"); r.Status != 200 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	if r := httpGet(t, front+"/cgi-bin/hello.sh"); r.Status != 200 {
		t.Fatalf("cgi: %d", r.Status)
	}

	url := "http://" + ops + "/status"
	dom := runChromium(t, "--dump-dom", url)
	text := visibleText(dom)
	for _, want := range []string{
		"junction", "Listeners", "scgi", scgiAddr,
		"Routes", "/cgi-bin/*",
		"Pools", "app", one, two, dead,
		"CGI", "scripts",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	// Instance rows: "<address> <state> ...".
	for _, row := range []struct{ addr, state string }{{one, "up"}, {two, "up"}, {dead, "ejected"}} {
		if !strings.Contains(text, row.addr+" "+row.state+" ") {
			t.Errorf("instance %s is not shown %s", row.addr, row.state)
		}
	}
	if !strings.Contains(text, "dial") {
		t.Error("the dead instance's last error is not shown")
	}
	if t.Failed() {
		t.Logf("page text:\n%s", text)
	}

	dir, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "status-phone.png")
	os.Remove(shot)
	runChromium(t, "--screenshot="+shot, "--window-size=412,915", "--hide-scrollbars", url)
	fi, err := os.Stat(shot)
	if err != nil || fi.Size() < 1000 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("status page screenshot (412x915): %s", shot)
}

// visibleText reduces a dumped DOM to its text, tags as spaces and
// whitespace collapsed, the way a reader sees it. The style element's
// content is dropped.
func visibleText(dom string) string {
	if i := strings.Index(dom, "<style"); i >= 0 {
		if j := strings.Index(dom[i:], "</style>"); j >= 0 {
			dom = dom[:i] + dom[i+j+len("</style>"):]
		}
	}
	var b strings.Builder
	in := false
	for _, r := range dom {
		switch {
		case r == '<':
			in = true
			b.WriteByte(' ')
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", `"`, "&#34;", `"`).Replace(b.String())), " ")
}
