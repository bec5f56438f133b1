package importer

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseProperties(t *testing.T) {
	src := `# comment
ps=/
worker.list=a,\
  b
worker.a.host=$(unknown)x
home=/opt$(ps)tomcat
`
	ps, err := parseProperties("w.properties", src, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.key+"="+p.value)
	}
	want := []string{"ps=/", "worker.list=a,b", "worker.a.host=$(unknown)x", "home=/opt/tomcat"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if ps[2].line != 5 {
		t.Errorf("line = %d", ps[2].line)
	}
	if _, err := parseProperties("b", "novalue\n", map[string]string{}); err == nil {
		t.Error("a line without = parsed")
	}
}

func TestModJK(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"workers.properties": `worker.list=lb,single,jkstatus
worker.node1.type=ajp13
worker.node1.host=10.0.0.1
worker.node1.port=8009
worker.node1.lbfactor=3
worker.node1.route=n1
worker.node2.type=ajp13
worker.node2.host=10.0.0.2
worker.node2.lbfactor=1
worker.node2.socket_timeout=10
worker.node3.type=ajp13
worker.node3.host=10.0.0.3
worker.node3.activation=S
worker.lb.type=lb
worker.lb.balance_workers=node1,node2,node3
worker.lb.method=B
worker.single.type=ajp13
worker.single.host=127.0.0.1
worker.single.port=8010
worker.jkstatus.type=status
`,
		"jk.conf": `JkWorkersFile workers.properties
JkMount /shop/* lb
JkMount /legacy single
JkMount /*.jsp lb
JkUnMount /shop/static/* lb
<Location /jkstatus>
    JkMount jkstatus
</Location>
`,
		"uriworkermap.properties": "/api/*=lb\n!/api/health=lb\n",
	})
	res, cfg := importOK(t, "modjk", []string{filepath.Join(dir, "jk.conf"), filepath.Join(dir, "uriworkermap.properties")}, Options{User: "nobody"})
	lb := cfg.Backends["lb"]
	if lb == nil || lb.Type != "http" || lb.Balance != "least_conn" {
		t.Fatalf("lb = %+v", lb)
	}
	var got []string
	for _, in := range lb.Instances {
		got = append(got, in.Address+" "+in.Route+" "+string(rune('0'+in.Weight)))
	}
	if want := []string{"10.0.0.1:8009 n1 3", "10.0.0.2:8009 node2 1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lb instances = %q, want %q (route defaults to the worker name; stopped node3 left out)", got, want)
	}
	if s := cfg.Backends["single"]; s == nil || len(s.Instances) != 1 || s.Instances[0].Address != "127.0.0.1:8010" || s.Instances[0].Route != "single" {
		t.Errorf("single = %+v", s)
	}
	var routes []string
	for _, r := range cfg.Routes {
		routes = append(routes, r.Prefix+"="+r.Backend)
	}
	if want := []string{"/shop/=lb", "/legacy=single", "/api/=lb"}; !reflect.DeepEqual(routes, want) {
		t.Errorf("routes = %q, want %q", routes, want)
	}
	for _, n := range []struct{ d, why string }{
		{"JkMount /*.jsp", "not a path prefix"},
		{"JkUnMount", "exclusion"},
		{"!/api/health", "exclusion"},
		{"worker.jkstatus.type=status", "no junction equivalent"},
		{"worker.node3.activation=S", "left out"},
		{"worker.node2.socket_timeout", "AJP connection setting"},
	} {
		if !hasNote(res, n.d, n.why) {
			t.Errorf("no note %q/%q in\n%s", n.d, n.why, res.Report())
		}
	}
	if !strings.Contains(res.Report(), "HTTP connector") {
		t.Errorf("no HTTP-connector hint:\n%s", res.Report())
	}
}

// TestModJKDebian imports the workers.properties Debian ships with a
// JkMount for its ajp13 worker.
func TestModJKDebian(t *testing.T) {
	f := needFile(t, "/etc/libapache2-mod-jk/workers.properties", "libapache2-mod-jk")
	dir := writeTree(t, map[string]string{"jk.conf": "JkMount /examples/* ajp13_worker\nJkMount /lb/* loadbalancer\n"})
	_, cfg := importOK(t, "modjk", []string{f, filepath.Join(dir, "jk.conf")}, Options{User: "tomcat"})
	w := cfg.Backends["ajp13_worker"]
	if w == nil || len(w.Instances) != 1 || w.Instances[0].Address != "localhost:8009" || w.Instances[0].Weight != 1 {
		t.Errorf("ajp13_worker = %+v", w)
	}
	lb := cfg.Backends["loadbalancer"]
	if lb == nil || len(lb.Instances) != 1 || lb.Instances[0].Route != "ajp13_worker" {
		t.Errorf("loadbalancer = %+v", lb)
	}
}
