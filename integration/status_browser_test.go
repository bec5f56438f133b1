package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/junction-gw/junction/internal/syncbuf"
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
	var stderr syncbuf.Buffer
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

// TestStatusSparklinesInBrowser renders /status in headless Chromium after
// traffic through nginx to a pool of two live instances and a dead one:
// the pool and each instance have three inline SVG sparklines (requests/s,
// errors/s, p99) of 90 ten-second buckets, whose latest points rise above
// the baseline where traffic went (the dead instance's errors, not the
// live ones'; the pool's requests, not its errors: retries hid the dead
// instance from clients). The source and capacity columns show.
func TestStatusSparklinesInBrowser(t *testing.T) {
	needBin(t, chromium, "chromium")
	one, _ := startAppInstance(t, "one")
	two, _ := startAppInstance(t, "two")
	dead := freeAddr(t)
	scgiAddr, ops := freeAddr(t), freeAddr(t)
	startJunction(t, fmt.Sprintf(`metrics: {address: %q}
listeners:
  - {protocol: scgi, address: %q, backend: app}
backends:
  app:
    type: http
    instances: [%q, %q, {address: %q, max_conns: 7}]
    health: {fail_threshold: 2, eject_base: 5m, eject_max: 5m}
`, ops, scgiAddr, one, two, dead), scgiAddr, ops)
	front := "http://" + nginxSCGI(t, scgiAddr)
	for i := range 30 {
		if r := httpGet(t, front+"/page"); r.Status != 200 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	url := "http://" + ops + "/status"
	dom := runChromium(t, "--dump-dom", url)

	pool := sparkSection(t, dom, `<div class="sparks pool">`, "</div>")
	rows := map[string]map[string][]float64{"pool": pool}
	for _, addr := range []string{one, two, dead} {
		rows[addr] = sparkSection(t, dom, "<td>"+addr+"</td>", "</tr>")
	}
	for name, sparks := range rows {
		for _, series := range []string{"requests", "errors", "p99"} {
			ys, ok := sparks[series]
			if !ok {
				t.Errorf("%s: no %s sparkline", name, series)
				continue
			}
			if len(ys) != 90 {
				t.Errorf("%s %s: %d points, want 90", name, series, len(ys))
			}
		}
	}
	// The latest two buckets hold the traffic (it may straddle a bucket
	// boundary).
	raised := func(ys []float64) bool {
		return len(ys) >= 2 && (ys[len(ys)-1] < sparkBaseline || ys[len(ys)-2] < sparkBaseline)
	}
	flat := func(ys []float64) bool {
		for _, y := range ys {
			if y != sparkBaseline {
				return false
			}
		}
		return len(ys) > 0
	}
	for _, c := range []struct {
		name, series string
		wantRaised   bool
	}{
		{"pool", "requests", true}, {"pool", "errors", false}, {"pool", "p99", true},
		{one, "requests", true}, {one, "errors", false}, {one, "p99", true},
		{two, "requests", true}, {two, "errors", false},
		{dead, "requests", true}, {dead, "errors", true},
	} {
		ys := rows[c.name][c.series]
		if c.wantRaised && !raised(ys) {
			t.Errorf("%s %s: the latest points lie on the baseline: %v", c.name, c.series, tailPoints(ys))
		}
		if !c.wantRaised && !flat(ys) {
			t.Errorf("%s %s: not flat: %v", c.name, c.series, tailPoints(ys))
		}
	}
	text := visibleText(dom)
	for _, want := range []string{one + " up", "static", "no bound", "max_conns 7", "requests/s, 15 min"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", tail(dom, 16<<10))
	}

	dir, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "status-sparklines.png")
	os.Remove(shot)
	runChromium(t, "--screenshot="+shot, "--window-size=1600,700", "--hide-scrollbars", url)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("status page screenshot (1600x700): %s", shot)
}

// sparkBaseline is the y of a zero value in the status page's sparklines.
const sparkBaseline = 23.0

// sparkSection returns the sparklines between the first start marker in
// dom and the next end marker, by series: the y value of each point.
func sparkSection(t *testing.T, dom, start, end string) map[string][]float64 {
	t.Helper()
	i := strings.Index(dom, start)
	if i < 0 {
		t.Fatalf("the page has no %q", start)
	}
	sec := dom[i:]
	if j := strings.Index(sec[len(start):], end); j >= 0 {
		sec = sec[:len(start)+j]
	}
	out := map[string][]float64{}
	for _, m := range sparkSVG.FindAllStringSubmatch(sec, -1) {
		var ys []float64
		for _, xy := range strings.Fields(m[2]) {
			_, y, _ := strings.Cut(xy, ",")
			f, err := strconv.ParseFloat(y, 64)
			if err != nil {
				t.Fatalf("%s sparkline point %q: %v", m[1], xy, err)
			}
			ys = append(ys, f)
		}
		out[m[1]] = ys
	}
	return out
}

// sparkSVG matches one sparkline as Chromium serializes it: the series
// and the polyline's points.
var sparkSVG = regexp.MustCompile(`(?s)<svg class="spark (\w+)".*?<polyline points="([^"]*)"`)

func tailPoints(ys []float64) []float64 {
	if len(ys) > 5 {
		return ys[len(ys)-5:]
	}
	return ys
}
