package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The CGI runner for shared hosts (issue 15, part A): interpreters by
// extension, run_as owner with suEXEC's checks, user_dir; real php-cgi,
// python3 and perl, real users made with useradd, through nginx's
// scgi_pass and fastcgi_pass and Apache's mod_proxy_ajp.

// runnerInfoPHP answers with what php-cgi saw, the POSTed form fields, and
// phpinfo()'s general and variables sections when asked (?info=1).
const runnerInfoPHP = `<?php
header("X-Runner: php");
echo "<pre>\n";
echo "php=", PHP_VERSION, "\n";
echo "sapi=", php_sapi_name(), "\n";
echo "script_name=", $_SERVER["SCRIPT_NAME"], "\n";
echo "path_info=", $_SERVER["PATH_INFO"] ?? "", "\n";
echo "method=", $_SERVER["REQUEST_METHOD"], "\n";
foreach ($_POST as $k => $v) { echo "post.", $k, "=", $v, "\n"; }
echo "</pre>\n";
if (isset($_GET["info"])) { phpinfo(INFO_GENERAL | INFO_VARIABLES); }
`

// runnerFormPHP is a form that posts to itself.
const runnerFormPHP = `<?php
if ($_SERVER["REQUEST_METHOD"] === "POST") {
    printf("Hello %s, you said %s (%d bytes)\n", htmlspecialchars($_POST["name"]), htmlspecialchars($_POST["msg"]), strlen($_POST["msg"]));
    return;
}
?>
<form method="post" action="<?= htmlspecialchars($_SERVER["SCRIPT_NAME"]) ?>">
<input name="name"><textarea name="msg"></textarea><button>Send</button>
</form>
`

const runnerPy = `import os, sys
sys.stdout.write("Content-Type: text/plain\r\n\r\n")
sys.stdout.write("python uid=%d gid=%d euid=%d groups=%s\n" % (os.getuid(), os.getgid(), os.geteuid(), ",".join(map(str, os.getgroups()))))
sys.stdout.write("script=%s argv=%s pi=%s\n" % (os.environ.get("SCRIPT_NAME"), sys.argv[0], os.environ.get("PATH_INFO", "")))
`

const runnerPl = `print "Content-Type: text/plain\r\n\r\n";
print "perl uid=$< euid=$> script=$ENV{SCRIPT_NAME} argv=$0 pi=$ENV{PATH_INFO}\n";
`

const runnerSh = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nsh uid=%s\\n' \"$(id -u)\"\n"

// runnerWrite writes a file with mode (past the umask) and owner.
func runnerWrite(t *testing.T, path, content string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	runnerOwn(t, path, mode, uid, gid)
}

// runnerMkdir makes a directory with mode and owner.
func runnerMkdir(t *testing.T, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	runnerOwn(t, path, mode, uid, gid)
}

func runnerOwn(t *testing.T, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // after chown, which clears setuid bits
		t.Fatal(err)
	}
}

// runnerPostForm POSTs form to url and reads the response.
func runnerPostForm(t *testing.T, u string, form url.Values) httpResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return httpDo(t, req)
}

// TestRunnerInterpreters: scripts without exec bits run through their
// extension's interpreter (php-cgi unmodified, python3, perl), through
// nginx's scgi_pass and fastcgi_pass; the extension ends the script part
// of the path; unmapped files still need the exec bit.
func TestRunnerInterpreters(t *testing.T) {
	t.Parallel()
	needBin(t, "/usr/bin/php-cgi", "php-cgi")
	needBin(t, "/usr/bin/python3", "python3")
	needBin(t, "/usr/bin/perl", "perl-base")
	root := filepath.Join(openTempDir(t), "cgi-bin")
	runnerMkdir(t, root, 0o755, 0, 0)
	for name, body := range map[string]string{
		"info.php": runnerInfoPHP, "form.php": runnerFormPHP, "hello.py": runnerPy, "hello.pl": runnerPl,
		"noexec.sh": runnerSh, "plain.txt": "text",
	} {
		runnerWrite(t, filepath.Join(root, name), body, 0o644, 0, 0)
	}
	runnerWrite(t, filepath.Join(root, "exec.sh"), runnerSh, 0o755, 0, 0)

	scgi, fcgi := freeAddr(t), freeAddr(t)
	j := startJunction(t, fmt.Sprintf(`log: {level: debug, format: text}
listeners:
  - {protocol: scgi, address: %[1]q, backend: site}
  - {protocol: fastcgi, address: %[2]q, backend: site}
backends:
  site:
    type: cgi
    allow_root: true
    root: %[3]q
    url_prefix: /cgi-bin/
    interpreters: {".php": /usr/bin/php-cgi, ".py": [/usr/bin/python3, -u], ".pl": /usr/bin/perl}
`, scgi, fcgi, root), scgi, fcgi)
	viaSCGI, viaFCGI := freeAddr(t), freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    server {
        listen %[1]s;
        location / { include /etc/nginx/scgi_params; scgi_pass %[2]s; }
    }
    server {
        listen %[3]s;
        location / { include /etc/nginx/fastcgi_params; fastcgi_pass %[4]s; }
    }
`, viaSCGI, scgi, viaFCGI, fcgi))

	for _, front := range []struct{ name, addr string }{{"scgi", viaSCGI}, {"fastcgi", viaFCGI}} {
		t.Run(front.name, func(t *testing.T) {
			base := "http://" + front.addr
			r := httpGet(t, base+"/cgi-bin/info.php/extra/x.php?info=1")
			switch {
			case r.Status != 200:
				t.Fatalf("info.php: %d %q\n%s", r.Status, r.Body, j.Output())
			case strings.Contains(r.Body, "Security Alert"):
				t.Fatalf("php-cgi refused the request (cgi.force_redirect without REDIRECT_STATUS): %q", r.Body)
			case r.Header.Get("X-Runner") != "php":
				t.Errorf("X-Runner %q", r.Header.Get("X-Runner"))
			}
			for _, want := range []string{"sapi=cgi-fcgi\n", "script_name=/cgi-bin/info.php\n", "path_info=/extra/x.php\n",
				"method=GET\n", "<title>PHP ", "Server API", "CGI/FastCGI", `$_SERVER['REDIRECT_STATUS']`} {
				if !strings.Contains(r.Body, want) {
					t.Errorf("info.php lacks %q", want)
				}
			}
			r = runnerPostForm(t, base+"/cgi-bin/info.php", url.Values{"name": {"alice"}, "msg": {"hello world & more"}})
			if r.Status != 200 || !strings.Contains(r.Body, "method=POST\npost.msg=hello world & more\npost.name=alice\n") {
				t.Errorf("POST info.php: %d %q", r.Status, r.Body)
			}
			r = httpGet(t, base+"/cgi-bin/form.php")
			if r.Status != 200 || !strings.Contains(r.Body, `<form method="post" action="/cgi-bin/form.php">`) {
				t.Errorf("GET form.php: %d %q", r.Status, r.Body)
			}
			msg := strings.Repeat("long message ", 1000)
			r = runnerPostForm(t, base+"/cgi-bin/form.php", url.Values{"name": {"<bob>"}, "msg": {msg}})
			if want := fmt.Sprintf("Hello &lt;bob&gt;, you said %s (%d bytes)\n", msg, len(msg)); r.Status != 200 || r.Body != want {
				t.Errorf("POST form.php: %d %q", r.Status, tail(r.Body, 200))
			}
		})
	}
	t.Run("python and perl", func(t *testing.T) {
		for script, want := range map[string]string{
			"hello.py/p": "python uid=0 gid=0 euid=0 groups=\nscript=/cgi-bin/hello.py argv=" + root + "/hello.py pi=/p\n",
			"hello.pl/q": "perl uid=0 euid=0 script=/cgi-bin/hello.pl argv=" + root + "/hello.pl pi=/q\n",
		} {
			r := httpGet(t, "http://"+viaSCGI+"/cgi-bin/"+script)
			if r.Status != 200 || r.Body != want {
				t.Errorf("%s: %d %q, want %q", script, r.Status, r.Body, want)
			}
		}
	})
	t.Run("exec bit", func(t *testing.T) {
		if r := httpGet(t, "http://"+viaSCGI+"/cgi-bin/exec.sh"); r.Status != 200 || r.Body != "sh uid=0\n" {
			t.Errorf("exec.sh: %d %q", r.Status, r.Body)
		}
		for _, p := range []string{"noexec.sh", "plain.txt", "plain.txt/x.php"} {
			if r := httpGet(t, "http://"+viaSCGI+"/cgi-bin/"+p); r.Status != 403 {
				t.Errorf("%s: %d %q, want 403", p, r.Status, r.Body)
			}
		}
	})
}

// runnerUser is an account a test created with useradd.
type runnerUser struct {
	Name     string
	UID, GID int
	Home     string
}

// runnerAddUser creates a user (and its group) with a unique name and
// home directory home (not created), and deletes both at the end of the
// test. useradd and userdel take a lock on /etc/passwd that other tests
// may hold for a moment: they are retried.
func runnerAddUser(t *testing.T, home string) runnerUser {
	t.Helper()
	needBin(t, "/usr/sbin/useradd", "passwd")
	if os.Geteuid() != 0 {
		t.Skip("useradd needs root")
	}
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "jrun" + hex.EncodeToString(b[:])
	runnerRetry(t, "/usr/sbin/useradd", "-M", "-U", "-d", home, "-s", "/usr/sbin/nologin", name)
	t.Cleanup(func() { runnerRetry(t, "/usr/sbin/userdel", name) })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid < 1000 || gid < 1000 {
		t.Fatalf("useradd gave %s uid %d gid %d, want both at least 1000 (UID_MIN, GID_MIN)", name, uid, gid)
	}
	return runnerUser{Name: name, UID: uid, GID: gid, Home: home}
}

// runnerRetry runs a passwd-changing command, again while the passwd
// lock is busy (exit status 10 for useradd and userdel).
func runnerRetry(t *testing.T, name string, args ...string) {
	t.Helper()
	var out []byte
	var err error
	for range 50 {
		out, err = exec.Command(name, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lock") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestRunnerRunAsOwner: two real users' scripts, each run as its owner
// (from the site's root and from their public_html via user_dir), and
// every suEXEC refusal a 403 whose reason is in junction's log and not in
// the response; through nginx's scgi_pass and Apache's mod_proxy_ajp.
func TestRunnerRunAsOwner(t *testing.T) {
	t.Parallel()
	needBin(t, "/usr/bin/python3", "python3")
	dir := openTempDir(t)
	alice := runnerAddUser(t, filepath.Join(dir, "home", "alice"))
	bob := runnerAddUser(t, filepath.Join(dir, "home", "bob"))

	www := filepath.Join(dir, "www")
	runnerMkdir(t, www, 0o755, 0, 0)
	runnerMkdir(t, filepath.Join(dir, "home"), 0o755, 0, 0)
	for _, u := range []runnerUser{alice, bob} {
		d := filepath.Join(www, u.Name)
		runnerMkdir(t, d, 0o755, u.UID, u.GID)
		runnerWrite(t, d+"/id.py", runnerPy, 0o644, u.UID, u.GID)
		runnerWrite(t, d+"/id.sh", runnerSh, 0o750, u.UID, u.GID)
		runnerMkdir(t, u.Home, 0o755, u.UID, u.GID)
		runnerMkdir(t, u.Home+"/public_html", 0o755, u.UID, u.GID)
		runnerWrite(t, u.Home+"/public_html/id.py", runnerPy, 0o600, u.UID, u.GID)
	}
	a := filepath.Join(www, alice.Name)
	// The refusals.
	runnerWrite(t, a+"/world-writable.sh", runnerSh, 0o757, alice.UID, alice.GID)
	runnerWrite(t, a+"/group-writable.py", runnerPy, 0o664, alice.UID, alice.GID)
	runnerWrite(t, a+"/root.sh", runnerSh, 0o755, 0, 0)
	if err := os.Symlink("../"+bob.Name+"/id.py", a+"/bobs.py"); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(a+"/bobs.py", alice.UID, alice.GID); err != nil {
		t.Fatal(err)
	}
	runnerMkdir(t, www+"/low", 0o755, 500, 500)
	runnerWrite(t, www+"/low/id.sh", runnerSh, 0o755, 500, 500)
	runnerWrite(t, bob.Home+"/public_html/alices.py", runnerPy, 0o644, alice.UID, alice.GID)

	scgi, ajp := freeAddr(t), freeAddr(t)
	j := startJunction(t, fmt.Sprintf(`log: {level: info, format: text}
listeners:
  - {protocol: scgi, address: %[1]q, backend: site}
  - {protocol: ajp, address: %[2]q, backend: site}
backends:
  site:
    type: cgi
    root: %[3]q
    run_as: owner
    user_dir: public_html
    interpreters: {".py": /usr/bin/python3}
`, scgi, ajp, www), scgi, ajp)
	viaSCGI, viaAJP := freeAddr(t), freeAddr(t)
	startNginx(t, fmt.Sprintf(`
    server {
        listen %[1]s;
        location / { include /etc/nginx/scgi_params; scgi_pass %[2]s; }
    }
`, viaSCGI, scgi))
	startApache(t, []string{"proxy", "proxy_ajp"}, fmt.Sprintf("Listen %s\nProxyPass / ajp://%s/\n", viaAJP, ajp), viaAJP)

	// The file's owner and group, and no supplementary groups (none of
	// junction's).
	ids := func(u runnerUser) string {
		return fmt.Sprintf("python uid=%[1]d gid=%[2]d euid=%[1]d groups=\n", u.UID, u.GID)
	}
	for _, front := range []struct{ name, addr string }{{"scgi", viaSCGI}, {"ajp", viaAJP}} {
		t.Run(front.name, func(t *testing.T) {
			for _, u := range []runnerUser{alice, bob} {
				for _, p := range []string{"/" + u.Name + "/id.py", "/~" + u.Name + "/id.py"} {
					r := httpGet(t, "http://"+front.addr+p+"/pi")
					if want := ids(u) + "script=" + p + " argv="; r.Status != 200 || !strings.HasPrefix(r.Body, want) {
						t.Errorf("%s: %d %q, want %q...", p, r.Status, r.Body, want)
					}
				}
				if r := httpGet(t, "http://"+front.addr+"/"+u.Name+"/id.sh"); r.Status != 200 || r.Body != fmt.Sprintf("sh uid=%d\n", u.UID) {
					t.Errorf("%s/id.sh: %d %q", u.Name, r.Status, r.Body)
				}
			}
		})
	}

	refusals := []struct{ path, reason string }{
		{"/" + alice.Name + "/world-writable.sh", "writable by group or others (mode 0757)"},
		{"/" + alice.Name + "/group-writable.py", "writable by group or others (mode 0664)"},
		{"/" + alice.Name + "/root.sh", "owned by root"},
		{"/" + alice.Name + "/bobs.py", fmt.Sprintf("is owned by uid %d, the script by uid %d", alice.UID, bob.UID)},
		{"/low/id.sh", "owner uid 500 is below min_uid 1000"},
		{"/~" + bob.Name + "/alices.py", fmt.Sprintf("owned by uid %d, not by the user whose directory it is (uid %d)", alice.UID, bob.UID)},
	}
	for _, tt := range refusals {
		r := httpGet(t, "http://"+viaSCGI+tt.path)
		if r.Status != 403 || strings.Contains(r.Body, "run_as") || strings.Contains(r.Body, "uid") || strings.Contains(r.Body, "writable") {
			t.Errorf("%s: %d %q, want a bare 403", tt.path, r.Status, r.Body)
		}
	}
	// The reasons reach the log (the router logs each refusal once).
	if !waitFor(5*time.Second, func() bool {
		out := j.Output()
		for _, tt := range refusals {
			if !strings.Contains(out, tt.reason) {
				return false
			}
		}
		return true
	}) {
		out := j.Output()
		for _, tt := range refusals {
			if !strings.Contains(out, tt.reason) {
				t.Errorf("%s: the log lacks %q", tt.path, tt.reason)
			}
		}
		t.Logf("junction's log:\n%s", tail(out, 4000))
	}
	if r := httpGet(t, "http://"+viaSCGI+"/~nosuchuser-junction/id.py"); r.Status != 404 {
		t.Errorf("~nosuchuser: %d", r.Status)
	}
	if r := httpGet(t, "http://"+viaSCGI+"/~root/id.py"); r.Status != 403 {
		t.Errorf("~root: %d", r.Status)
	}
}

// TestRunnerCheck: junction check names run_as when junction could not
// switch to each script's owner, or user and group compete with it, and
// accepts run_as owner and user_dir as root without allow_root.
func TestRunnerCheck(t *testing.T) {
	t.Parallel()
	root := openTempDir(t)
	conf := func(top, backend string) string {
		return writeFile(t, t.TempDir(), "junction.yaml", fmt.Sprintf(`%slisteners:
  - {protocol: scgi, address: %q, backend: sites}
backends:
  sites: {type: cgi, root: %q, %s}
`, top, freeAddr(t), root, backend))
	}
	for _, tt := range []struct {
		name, top, backend, want string
	}{
		{"run_as with user", "", "run_as: owner, user: nobody", "backends.sites.run_as: excludes user and group"},
		{"run_as with a top-level user", "user: nobody\n", "run_as: owner", `backends.sites.run_as: junction drops to user "nobody"`},
		{"user_dir with a top-level user", "user: nobody\n", "user_dir: public_html", `backends.sites.user_dir: junction drops to user "nobody"`},
		{"min_uid alone", "", "min_uid: 10, allow_root: true", "backends.sites.min_uid: applies with run_as or user_dir only"},
		{"bad interpreter", "", `interpreters: {".py": "python3 -u"}, allow_root: true`, `backends.sites.interpreters..py: "python3 -u": give the command`},
	} {
		out, err := junctionCommand(t, "check", "-c", conf(tt.top, tt.backend)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("%s: %v\n%s\nwant %q", tt.name, err, out, tt.want)
		}
	}
	out, err := junctionCommand(t, "check", "-c", conf("", "run_as: owner, user_dir: public_html")).CombinedOutput()
	if os.Geteuid() == 0 {
		if err != nil || string(out) != "ok\n" {
			t.Errorf("run_as owner as root: %v\n%s", err, out)
		}
	} else if err == nil || !strings.Contains(string(out), "backends.sites.run_as: needs junction to run as root") {
		t.Errorf("run_as owner not as root: %v\n%s", err, out)
	}
}
