package importer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseApache(t *testing.T) {
	src := `# comment
ServerName example.org
<VirtualHost *:80>
    ScriptAlias "/cgi bin/" '/srv/my cgi/'
    SetEnv GREETING "hello \"world\""
    Options \
        +ExecCGI
    <Directory /srv>
        Require all granted
    </Directory>
</VirtualHost>
`
	ds, err := parseApache("a.conf", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[1].Name != "VirtualHost" || !ds[1].HasBlock || ds[1].Line != 3 {
		t.Fatalf("top = %+v", ds)
	}
	vh := ds[1].Block
	if got := vh[0].Args; !reflect.DeepEqual(got, []string{"/cgi bin/", "/srv/my cgi/"}) {
		t.Errorf("ScriptAlias args = %q", got)
	}
	if got := vh[1].Args; !reflect.DeepEqual(got, []string{"GREETING", `hello "world"`}) {
		t.Errorf("SetEnv args = %q", got)
	}
	if vh[2].Name != "Options" || !reflect.DeepEqual(vh[2].Args, []string{"+ExecCGI"}) || vh[2].Line != 6 {
		t.Errorf("continued line = %+v", vh[2])
	}
	if vh[3].Line != 8 || len(vh[3].Block) != 1 {
		t.Errorf("Directory = %+v", vh[3])
	}
	for _, bad := range []string{"<Directory /x>\n", "</Directory>\n", "<Directory /x>\n</Location>\n", "<Directory /x\n", `SetEnv A "open` + "\n", "<>\n"} {
		if _, err := parseApache("b.conf", bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestApacheServeCGIBinDebian imports Debian's serve-cgi-bin.conf: the
// ScriptAlias inside <IfModule>/<IfDefine> is reached through the Define
// the same file makes.
func TestApacheServeCGIBinDebian(t *testing.T) {
	f := needFile(t, "/etc/apache2/conf-available/serve-cgi-bin.conf", "apache2")
	res, cfg := importOK(t, "apache", []string{f}, Options{User: "www-data"})
	be := cfg.Backends["cgi-bin"]
	if be == nil || be.Type != "cgi" || be.Root != "/usr/lib/cgi-bin" || be.URLPrefix != "/cgi-bin/" {
		t.Fatalf("backends = %+v", cfg.Backends)
	}
	if !hasNote(res, "Options +ExecCGI", "not needed") {
		t.Errorf("report:\n%s", res.Report())
	}
	if len(res.Snippets) != 2 || res.Snippets[0].Server != "nginx" || !strings.Contains(res.Snippets[1].Text, "ProxyPass /cgi-bin/ scgi://127.0.0.1:4000/cgi-bin/") {
		t.Errorf("snippets = %+v", res.Snippets)
	}
}

// TestApacheDebianMain imports Debian's apache2.conf with its includes:
// User comes from ${APACHE_RUN_USER} in the envvars file next to it.
func TestApacheDebianMain(t *testing.T) {
	f := needFile(t, "/etc/apache2/apache2.conf", "apache2")
	if _, err := os.Stat("/etc/apache2/conf-enabled/serve-cgi-bin.conf"); err != nil {
		t.Skip("serve-cgi-bin is not enabled here (a2enconf serve-cgi-bin)")
	}
	_, cfg := importOK(t, "apache", []string{f}, Options{})
	if cfg.User != "www-data" || cfg.Group != "www-data" {
		t.Errorf("user/group = %q/%q, want www-data from envvars", cfg.User, cfg.Group)
	}
}

func TestApacheMapping(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"httpd.conf": `User www-data
Group www-data
SetEnv SITE main
PassEnv TZ
Include conf.d/*.conf
IncludeOptional missing/*.conf
`,
		"conf.d/site.conf": `<VirtualHost *:80>
    DocumentRoot /srv/www
    ScriptAlias /cgi-bin/ /srv/cgi/
    Alias /tools/ /srv/tools/
    <Directory /srv/tools>
        Options +ExecCGI
        AddHandler cgi-script .cgi .pl
        SetEnv TOOLS yes
    </Directory>
    <Directory /srv/cgi>
        SetEnv PERL5LIB /srv/lib
    </Directory>
    ProxyPass /php/ fcgi://127.0.0.1:9000/srv/php/
    ProxyPass /api/ http://127.0.0.1:8080/
    ProxyPass /same/ http://127.0.0.1:8081/same/
    ProxyPass /moved/ http://127.0.0.1:8082/elsewhere/
    ProxyPass /static/ !
    ProxyPass /s/ scgi://127.0.0.1:4001/
    ProxyPassReverse /api/ http://127.0.0.1:8080/
    ProxyPass /shop/ balancer://shop/ stickysession=JSESSIONID|jsessionid
    <Proxy balancer://shop>
        BalancerMember http://10.0.0.1:8080 route=a loadfactor=2
        BalancerMember http://10.0.0.2:8080 route=b
        ProxySet lbmethod=bybusyness
    </Proxy>
    ScriptAliasMatch ^/x/(.*) /srv/x/$1
    <LocationMatch "^/y/">
        SetHandler cgi-script
    </LocationMatch>
    CGIScriptTimeout 90
</VirtualHost>
`,
	})
	res, cfg := importOK(t, "apache", []string{filepath.Join(dir, "httpd.conf")}, Options{User: "ignored"})
	if cfg.User != "www-data" || cfg.Group != "www-data" {
		t.Errorf("user/group = %q/%q (the file's User wins over --user)", cfg.User, cfg.Group)
	}
	cgi := cfg.Backends["cgi-bin"]
	if cgi == nil || cgi.Root != "/srv/cgi" || cgi.URLPrefix != "/cgi-bin/" || cgi.SetEnv["PERL5LIB"] != "/srv/lib" || cgi.SetEnv["SITE"] != "main" || !reflect.DeepEqual(cgi.PassEnv, []string{"TZ"}) || cgi.Timeout.Seconds() != 90 {
		t.Errorf("cgi-bin = %+v", cgi)
	}
	tools := cfg.Backends["tools"]
	if tools == nil || tools.Root != "/srv/tools" || tools.URLPrefix != "/tools/" || tools.SetEnv["TOOLS"] != "yes" {
		t.Errorf("tools = %+v", tools)
	}
	php := cfg.Backends["php"]
	if php == nil || php.Type != "fastcgi" || php.Root != "/srv/php" || php.StripPrefix != "/php" || php.Instances[0].Address != "127.0.0.1:9000" {
		t.Errorf("php = %+v", php)
	}
	if api := cfg.Backends["api"]; api == nil || api.Type != "http" || api.StripPrefix != "/api" {
		t.Errorf("api = %+v", api)
	}
	if same := cfg.Backends["same"]; same == nil || same.StripPrefix != "" {
		t.Errorf("same = %+v", same)
	}
	shop := cfg.Backends["shop"]
	if shop == nil || shop.Balance != "least_conn" || len(shop.Instances) != 2 ||
		shop.Instances[0].Route != "a" || shop.Instances[0].Weight != 2 || shop.Instances[1].Route != "b" || shop.Instances[1].Weight != 0 || shop.StripPrefix != "/shop" {
		t.Errorf("shop = %+v", shop)
	}
	var prefixes []string
	for _, r := range cfg.Routes {
		prefixes = append(prefixes, r.Prefix+"="+r.Backend)
	}
	want := []string{"/cgi-bin/=cgi-bin", "/tools/=tools", "/php/=php", "/api/=api", "/same/=same", "/shop/=shop"}
	if !reflect.DeepEqual(prefixes, want) {
		t.Errorf("routes = %v, want %v", prefixes, want)
	}
	for _, n := range []struct{ d, why string }{
		{"AddHandler cgi-script .cgi .pl", "not needed"},
		{"Options +ExecCGI", "not needed"},
		{"ProxyPass /moved/", "strip_prefix"},
		{"ProxyPass /static/ !", "exclusion"},
		{"ProxyPass /s/", "SCGI application"},
		{"ProxyPassReverse", "Location"},
		{"ScriptAliasMatch", "regex"},
		{"<LocationMatch ^/y/>", "regex"},
	} {
		if !hasNote(res, n.d, n.why) {
			t.Errorf("no note %q/%q in\n%s", n.d, n.why, res.Report())
		}
	}
}

// TestApacheFcgiwrapProxy: ProxyPass to fcgiwrap's socket hands the socket
// to junction, with the directory in the URL as the root.
func TestApacheFcgiwrapProxy(t *testing.T) {
	dir := writeTree(t, map[string]string{"a.conf": `ProxyPass /cgi-bin/ "unix:/run/fcgiwrap.socket|fcgi://localhost/usr/lib/cgi-bin/"` + "\n"})
	_, cfg := importOK(t, "apache", []string{filepath.Join(dir, "a.conf")}, Options{User: "nobody"})
	if l := cfg.Listeners[0]; l.Protocol != "fastcgi" || l.Address != "unix:/run/fcgiwrap.socket" {
		t.Errorf("listener = %+v", l)
	}
	if be := cfg.Backends["cgi-bin"]; be == nil || be.Root != "/usr/lib/cgi-bin" || be.URLPrefix != "/cgi-bin/" {
		t.Errorf("backends = %+v", cfg.Backends)
	}
}

// TestApacheAction maps Action handlers to interpreters. The output uses
// the interpreters key of the CGI runner (issue 15): until that is on
// main, junction's config loader rejects it, so this check is its own
// test.
func TestApacheAction(t *testing.T) {
	dir := writeTree(t, map[string]string{"a.conf": `DocumentRoot /srv/www
ScriptAlias /cgi-bin/ /usr/lib/cgi-bin/
Action application/x-httpd-php /cgi-bin/php-cgi
Action text-filter /filters/unmapped
AddHandler application/x-httpd-php .php
<Directory /srv/www/app>
    AddHandler text-filter .txt
</Directory>
`})
	res, err := Import("apache", []string{filepath.Join(dir, "a.conf")}, Options{User: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, be := range res.Config.Backends {
		for _, in := range be.Interpreters {
			got = append(got, be.Name+" "+be.Root+" "+in.Ext+"="+strings.Join(in.Command, " "))
		}
	}
	// A ScriptAlias directory runs its files as CGI scripts (Apache forces
	// cgi-script there); the document root and the directory below it run
	// .php files through the action.
	want := []string{"app /srv/www/app .php=/usr/lib/cgi-bin/php-cgi", "scripts /srv/www .php=/usr/lib/cgi-bin/php-cgi"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("interpreters = %q, want %q\n%s", got, want, res.YAML(""))
	}
	if !hasNote(res, "Action text-filter /filters/unmapped", "not under a ScriptAlias") || strings.Count(res.Report(), "text-filter") != 1 {
		t.Errorf("report:\n%s", res.Report())
	}
	t.Run("config", func(t *testing.T) {
		importOK(t, "apache", []string{filepath.Join(dir, "a.conf")}, Options{User: "nobody"})
	})
}
