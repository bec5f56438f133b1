package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Django 3.2 as Debian packages it needs Debian's python3; the python3 on
// PATH may be another build without it.
const (
	appsPython   = "/usr/bin/python3"
	appsGunicorn = "/usr/bin/gunicorn"
)

// appsDjangoProject generates a Django project "mysite" in a temp dir with
// django-admin's startproject, then gives it the test's settings (DEBUG
// off, CSRF on, sessions in locmem or files), views and URLs
// (testdata/apps/django) and examples/django.cgi next to manage.py.
func appsDjangoProject(t *testing.T) string {
	t.Helper()
	needBin(t, appsPython, "python3")
	if out, err := exec.Command(appsPython, "-c", "import django").CombinedOutput(); err != nil {
		t.Skipf("Django not importable by %s (apt-get install python3-django): %v\n%s", appsPython, err, out)
	}
	dir := openTempDir(t)
	cmd := exec.Command(appsPython, "-m", "django", "startproject", "mysite", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("django startproject: %v\n%s", err, out)
	}
	src := filepath.Join("testdata", "apps", "django")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	settings := filepath.Join(dir, "mysite", "settings.py")
	orig, err := os.ReadFile(settings)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "mysite"), "settings.py", string(orig)+read("settings_tail.py"))
	writeFile(t, filepath.Join(dir, "mysite"), "urls.py", read("urls.py"))
	writeFile(t, filepath.Join(dir, "mysite"), "views.py", read("views.py"))
	script := writeFile(t, dir, "django.cgi", appsExample(t, "django.cgi"))
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sessions"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// appsStartGunicorn runs one gunicorn on the project, reached directly by
// the test as the reference.
func appsStartGunicorn(t *testing.T, project, addr string) {
	t.Helper()
	needBin(t, appsGunicorn, "gunicorn")
	cmd := exec.Command(appsGunicorn, "--bind", addr, "--workers", "1", "--threads", "4", "mysite.wsgi")
	cmd.Dir = project
	cmd.Env = []string{"PATH=/usr/bin:/bin", "DJANGO_SETTINGS_MODULE=mysite.settings"}
	p := startCmd(t, "gunicorn", cmd, 10*time.Second, false)
	waitListening(t, p, 60*time.Second, addr)
}

// appsStartJunctionWithInstances is startJunction for a configuration
// whose pool instances junction spawns: on SIGTERM junction stops them
// before it exits, and a gunicorn with threaded workers takes about a
// second to stop (its worker polls every second), several on a loaded
// machine, so junction gets longer than startJunction's 5s to exit.
func appsStartJunctionWithInstances(t *testing.T, yaml string, addrs ...string) {
	t.Helper()
	needJunction(t)
	cfg := writeFile(t, t.TempDir(), "junction.yaml", yaml)
	p := startCmd(t, "junction", exec.Command(junctionBin, "serve", "-c", cfg), 30*time.Second, true)
	waitListening(t, p, 90*time.Second, addrs...)
}

// appsDjangoClient keeps cookies by name, as a browser on one site does,
// and never follows redirects: each step of the flow is checked.
type appsDjangoClient struct {
	t       *testing.T
	cookies map[string]string
	// drop names cookies the client does not send back.
	drop []string
}

func (c *appsDjangoClient) do(method, target, form string) httpResult {
	c.t.Helper()
	var req *http.Request
	var err error
	if form != "" {
		req, err = http.NewRequest(method, target, strings.NewReader(form))
	} else {
		req, err = http.NewRequest(method, target, nil)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for name, v := range c.cookies {
		if !slices.Contains(c.drop, name) {
			req.AddCookie(&http.Cookie{Name: name, Value: v})
		}
	}
	r := httpDo(c.t, req)
	for _, sc := range (&http.Response{Header: r.Header}).Cookies() {
		c.cookies[sc.Name] = sc.Value
	}
	return r
}

// appsDjangoFlow is what a browser sees of GET form → POST (CSRF token from
// the page and the cookie) → relative 302 → GET page.
type appsDjangoFlow struct {
	FormStatus    int
	FormType      string
	FormCookies   []string // names and paths of the cookies the form set
	FormPage      string   // with the CSRF token blanked
	PostStatus    int
	PostLocation  string
	PostCookies   []string
	PageStatus    int
	PageType      string
	Page          string
	NoTokenStatus int // the same POST without the CSRF token
}

var appsCSRFField = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)

// appsCookieShapes returns "name; Path=..." of each Set-Cookie, sorted,
// without the names in skip.
func appsCookieShapes(h http.Header, skip string) []string {
	var out []string
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name != skip {
			out = append(out, c.Name+"; Path="+c.Path)
		}
	}
	slices.Sort(out)
	return out
}

func appsRunDjangoFlow(t *testing.T, c *appsDjangoClient, base, name string) appsDjangoFlow {
	t.Helper()
	var f appsDjangoFlow
	form := base + "/form/"
	r := c.do("GET", form, "")
	f.FormStatus, f.FormType = r.Status, r.Header.Get("Content-Type")
	f.FormCookies = appsCookieShapes(r.Header, "JUNCTION_INSTANCE")
	m := appsCSRFField.FindStringSubmatch(r.Body)
	if m == nil {
		t.Fatalf("GET %s: %d, no CSRF field in %q", form, r.Status, r.Body)
	}
	f.FormPage = strings.Replace(r.Body, m[1], "TOKEN", 1)

	r = c.do("POST", form, url.Values{"name": {name}}.Encode())
	f.NoTokenStatus = r.Status

	r = c.do("POST", form, url.Values{"name": {name}, "csrfmiddlewaretoken": {m[1]}}.Encode())
	f.PostStatus, f.PostLocation = r.Status, r.Header.Get("Location")
	f.PostCookies = appsCookieShapes(r.Header, "JUNCTION_INSTANCE")
	loc, err := url.Parse(f.PostLocation)
	if err != nil {
		t.Fatalf("POST %s: Location %q: %v", form, f.PostLocation, err)
	}
	formURL, _ := url.Parse(form)
	r = c.do("GET", formURL.ResolveReference(loc).String(), "")
	f.PageStatus, f.PageType, f.Page = r.Status, r.Header.Get("Content-Type"), r.Body
	return f
}

// appsCheckDjangoFlow compares a flow through junction with the same flow
// against gunicorn reached directly, and both with what the application
// does.
func appsCheckDjangoFlow(t *testing.T, got, direct appsDjangoFlow, name string) {
	t.Helper()
	want := appsDjangoFlow{
		FormStatus: 200, FormType: "text/html; charset=utf-8", FormCookies: []string{"csrftoken; Path=/"}, FormPage: direct.FormPage,
		PostStatus: 302, PostLocation: "../page/", PostCookies: []string{"sessionid; Path=/"},
		PageStatus: 200, PageType: "text/plain", Page: "hello " + name + ", visit 1\n", NoTokenStatus: 403,
	}
	if fmt.Sprint(direct) != fmt.Sprint(want) {
		t.Fatalf("gunicorn reached directly does not behave as the test expects:\n got %+v\nwant %+v", direct, want)
	}
	t.Logf("flow through junction: %+v", got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("through junction:\n got %+v\nwant %+v (as gunicorn reached directly)", got, want)
	}
}

// TestAppsDjango serves one generated Django project (form POST → relative
// 302 → page; session cookie; CSRF on) through junction and checks that the
// browser's flow is exactly what gunicorn reached directly gives:
//
//   - as a CGI script (wsgiref.handlers.CGIHandler, examples/django.cgi and
//     django-cgi.yaml) under nginx scgi_pass and fastcgi_pass, mounted at
//     /django;
//   - as two gunicorn instances junction spawns into an HTTP pool with a
//     sticky cookie (examples/django-pool.yaml) behind Apache mod_proxy_ajp
//     (examples/apache-django-ajp.conf). Sessions live in each instance's
//     memory, so a request that reaches the other instance shows: the same
//     client without the sticky cookie loses its session.
func TestAppsDjango(t *testing.T) {
	t.Parallel()
	project := appsDjangoProject(t)
	directAddr := freeAddr(t)
	appsStartGunicorn(t, project, directAddr)
	direct := appsRunDjangoFlow(t, &appsDjangoClient{t: t, cookies: map[string]string{}}, "http://"+directAddr, "gopher")

	t.Run("cgi via nginx", func(t *testing.T) {
		t.Parallel()
		scgiAddr, fcgiAddr, viaSCGI, viaFCGI := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
		startJunction(t, appsExample(t, "django-cgi.yaml",
			"127.0.0.1:4000", scgiAddr,
			"127.0.0.1:9000", fcgiAddr,
			"/srv/mysite", project,
			"    url_prefix: /django", "    allow_root: true\n    url_prefix: /django",
		), scgiAddr, fcgiAddr)
		startNginx(t, fmt.Sprintf(`server {
        listen %s;
        location /django/ { include /etc/nginx/scgi_params; scgi_pass %s; }
    }
    server {
        listen %s;
        location /django/ { include /etc/nginx/fastcgi_params; fastcgi_pass %s; }
    }`, viaSCGI, scgiAddr, viaFCGI, fcgiAddr))
		for _, front := range []struct{ name, addr string }{{"scgi_pass", viaSCGI}, {"fastcgi_pass", viaFCGI}} {
			t.Run(front.name, func(t *testing.T) {
				c := &appsDjangoClient{t: t, cookies: map[string]string{}}
				got := appsRunDjangoFlow(t, c, "http://"+front.addr+"/django", "gopher")
				appsCheckDjangoFlow(t, got, direct, "gopher")
				// The session outlives the process that created it (file sessions).
				if r := c.do("GET", "http://"+front.addr+"/django/page/", ""); r.Body != "hello gopher, visit 2\n" {
					t.Errorf("second visit: %d %q", r.Status, r.Body)
				}
			})
		}
	})

	t.Run("gunicorn pool via apache ajp", func(t *testing.T) {
		t.Parallel()
		needBin(t, appsGunicorn, "gunicorn")
		ajpAddr, apacheAddr := freeAddr(t), freeAddr(t)
		appsStartJunctionWithInstances(t, appsExample(t, "django-pool.yaml",
			"127.0.0.1:8009", ajpAddr,
			"secret: s3cret", "secret: "+ajpSecret,
			"/srv/mysite", project,
		), ajpAddr)
		startApache(t, []string{"proxy", "proxy_ajp"}, fmt.Sprintf("Listen %s\n", apacheAddr)+
			appsExample(t, "apache-django-ajp.conf", "127.0.0.1:8009", ajpAddr, "secret=s3cret", "secret="+ajpSecret))
		base := "http://" + apacheAddr
		c := &appsDjangoClient{t: t, cookies: map[string]string{}}
		got := appsRunDjangoFlow(t, c, base, "gopher")
		appsCheckDjangoFlow(t, got, direct, "gopher")
		if c.cookies["JUNCTION_INSTANCE"] == "" {
			t.Fatalf("no sticky cookie after the flow; cookies %v", c.cookies)
		}
		// Sticky: every later visit reaches the instance holding the session.
		for visit := 2; visit <= 5; visit++ {
			if r := c.do("GET", base+"/page/", ""); r.Body != fmt.Sprintf("hello gopher, visit %d\n", visit) {
				t.Errorf("visit %d with the sticky cookie: %d %q", visit, r.Status, r.Body)
			}
		}
		// Without it, round robin sends some visits to the other instance,
		// which has no such session: proof that the check above can fail.
		lost := 0
		c.drop = []string{"JUNCTION_INSTANCE"}
		for range 4 {
			switch r := c.do("GET", base+"/page/", ""); {
			case r.Body == "no session\n":
				lost++
			case !strings.HasPrefix(r.Body, "hello gopher, visit "):
				t.Errorf("without the sticky cookie: %d %q", r.Status, r.Body)
			}
		}
		if lost == 0 {
			t.Errorf("4 visits without the sticky cookie all found the session: are both instances serving?")
		}
	})
}
