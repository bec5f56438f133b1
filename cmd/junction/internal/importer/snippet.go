package importer

import (
	"fmt"
	"strings"
)

// front is a URL prefix the front server sends to one of junction's
// listeners.
type front struct {
	prefix  string
	address string // the listener's address
	proto   string
	// root is the directory of a cgi backend's scripts: lighttpd builds
	// SCRIPT_FILENAME from its own mapping of the URL, which must land
	// inside it.
	root string
}

// pointFront records that requests under prefix reach junction at l;
// root, when given, is where the scripts are.
func (b *builder) pointFront(prefix string, l *Listener, root ...string) {
	for _, f := range b.fronts {
		if f.prefix == prefix {
			return
		}
	}
	f := front{prefix: prefix, address: l.Address, proto: l.Protocol}
	if len(root) > 0 {
		f.root = root[0]
	}
	b.fronts = append(b.fronts, f)
}

// snippets renders the front-server configuration for each server named.
func (b *builder) snippets(servers ...string) {
	if len(b.fronts) == 0 {
		return
	}
	for _, s := range servers {
		switch s {
		case "nginx":
			b.res.Snippets = append(b.res.Snippets, Snippet{Server: "nginx", Where: "inside server { }", Text: nginxSnippet(b.fronts)})
		case "apache":
			b.res.Snippets = append(b.res.Snippets, Snippet{Server: "apache", Where: "in the virtual host (mod_proxy with mod_proxy_scgi, mod_proxy_fcgi or mod_proxy_http)", Text: apacheSnippet(b.fronts)})
		case "lighttpd":
			b.res.Snippets = append(b.res.Snippets, Snippet{Server: "lighttpd", Where: "in lighttpd.conf", Text: lighttpdSnippet(b.fronts)})
		}
	}
}

func nginxSnippet(fs []front) string {
	var w strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&w, "location %s {\n", f.prefix)
		switch f.proto {
		case "scgi":
			fmt.Fprintf(&w, "    include /etc/nginx/scgi_params;\n    scgi_buffering off;\n    scgi_pass %s;\n", f.address)
		case "fastcgi":
			fmt.Fprintf(&w, "    include /etc/nginx/fastcgi_params;\n    fastcgi_buffering off;\n    fastcgi_pass %s;\n", f.address)
		case "http":
			fmt.Fprintf(&w, "    proxy_pass http://%s;\n", strings.TrimPrefix(f.address, "unix:"))
		}
		w.WriteString("}\n")
	}
	return w.String()
}

func apacheSnippet(fs []front) string {
	scheme := map[string]string{"scgi": "scgi", "fastcgi": "fcgi", "http": "http"}
	var w strings.Builder
	for _, f := range fs {
		s := scheme[f.proto]
		if path, ok := strings.CutPrefix(f.address, "unix:"); ok {
			fmt.Fprintf(&w, "ProxyPass %s \"unix:%s|%s://localhost%s\"\n", f.prefix, path, s, f.prefix)
			continue
		}
		fmt.Fprintf(&w, "ProxyPass %s %s://%s%s\n", f.prefix, s, f.address, f.prefix)
	}
	return w.String()
}

func lighttpdSnippet(fs []front) string {
	mods := map[string]string{"scgi": "mod_scgi", "fastcgi": "mod_fastcgi", "http": "mod_proxy"}
	keys := map[string]string{"scgi": "scgi.server", "fastcgi": "fastcgi.server", "http": "proxy.server"}
	var w strings.Builder
	seen := map[string]bool{}
	var aliases []string
	for _, f := range fs {
		if !seen[f.proto] {
			seen[f.proto] = true
			fmt.Fprintf(&w, "server.modules += ( %q )\n", mods[f.proto])
		}
		if f.root != "" && strings.HasSuffix(f.prefix, "/") {
			aliases = append(aliases, fmt.Sprintf("%q => %q", f.prefix, f.root+"/"))
		}
	}
	if len(aliases) > 0 {
		// lighttpd sends SCRIPT_FILENAME from its own URL mapping; junction
		// honours it only inside the backend's root (keep an alias.url you
		// already have for these prefixes instead).
		w.WriteString("server.modules += ( \"mod_alias\" )\n")
		fmt.Fprintf(&w, "alias.url += ( %s )\n", strings.Join(aliases, ", "))
	}
	for _, proto := range []string{"scgi", "fastcgi", "http"} {
		var entries []string
		for _, f := range fs {
			if f.proto != proto {
				continue
			}
			var where string
			if path, ok := strings.CutPrefix(f.address, "unix:"); ok {
				where = fmt.Sprintf("%q => %q", "socket", path)
			} else {
				host, port, _ := strings.Cut(f.address, ":")
				if i := strings.LastIndexByte(f.address, ':'); i >= 0 {
					host, port = f.address[:i], f.address[i+1:]
				}
				where = fmt.Sprintf("%q => %q, %q => %s", "host", strings.Trim(host, "[]"), "port", port)
			}
			check := ""
			if proto != "http" {
				check = `, "check-local" => "disable"`
			}
			entries = append(entries, fmt.Sprintf("    %q => (( %s%s ))", f.prefix, where, check))
		}
		if len(entries) > 0 {
			fmt.Fprintf(&w, "%s += (\n%s\n)\n", keys[proto], strings.Join(entries, ",\n"))
		}
	}
	return w.String()
}
