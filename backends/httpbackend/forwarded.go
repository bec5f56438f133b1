package httpbackend

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// setForwarded sets X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host
// and Forwarded on out from what the front server told us about in.
// ReverseProxy has already removed these headers from out.
func setForwarded(in *http.Request, out http.Header) {
	client := clientAddr(in.RemoteAddr)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	ip := ""
	if client.IsValid() {
		ip = clientText(in.RemoteAddr, client)
	}

	// The values share one backing array: one allocation instead of a
	// slice per header. The names are already canonical.
	vals := make([]string, 0, 4)
	set := func(name, v string) {
		vals = append(vals, v)
		out[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}

	xff := joinValues(in.Header.Values("X-Forwarded-For"))
	switch {
	case ip == "":
	case xff == "":
		xff = ip
	case lastElement(xff) != ip:
		// The front server may already have appended the client
		// (nginx $proxy_add_x_forwarded_for); do not list it twice.
		xff += ", " + ip
	}
	if xff != "" {
		set("X-Forwarded-For", xff)
	}
	set("X-Forwarded-Proto", proto)
	if in.Host != "" {
		set("X-Forwarded-Host", in.Host)
	}

	prior := joinValues(in.Header.Values("Forwarded"))
	var b strings.Builder
	b.Grow(len(prior) + len(ip) + 2*len(in.Host) + 40)
	if prior != "" {
		b.WriteString(prior)
		b.WriteString(", ")
	}
	b.WriteString("for=")
	writeNode(&b, client, ip)
	if in.Host != "" {
		b.WriteString(";host=")
		writeQuotedIfNeeded(&b, in.Host)
	}
	b.WriteString(";proto=")
	b.WriteString(proto)
	set("Forwarded", b.String())
}

// clientAddr parses r.RemoteAddr, which the codecs set to "ip:port" or to
// a bare IP when the front server sent no port. The zero Addr means
// unknown (a Unix-socket peer, or nothing at all).
// clientText is a's text: the host part of remote when that is already
// the canonical form (an IPv4 address that parsed: ParseAddr refuses
// leading zeros), saving an allocation per request; else a.String().
func clientText(remote string, a netip.Addr) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	if a.Is4() && strings.IndexByte(host, ':') < 0 {
		return host
	}
	return a.String()
}

func clientAddr(remote string) netip.Addr {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// writeNode writes the client (a, printed as s) for RFC 7239's for=
// parameter: IPv6 addresses are bracketed and quoted (section 6), an
// unknown client is "unknown".
func writeNode(b *strings.Builder, a netip.Addr, s string) {
	switch {
	case !a.IsValid():
		b.WriteString("unknown")
	case a.Is6():
		b.WriteString(`"[`)
		b.WriteString(s)
		b.WriteString(`]"`)
	default:
		b.WriteString(s)
	}
}

// joinValues folds repeated header lines into one comma-separated list.
func joinValues(vs []string) string {
	var parts []string
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, ", ")
}

// lastElement returns the last entry of a comma-separated list.
func lastElement(list string) string {
	if i := strings.LastIndexByte(list, ','); i >= 0 {
		list = list[i+1:]
	}
	return strings.TrimSpace(list)
}

// writeQuotedIfNeeded writes v as an RFC 7230 token when it is one, else
// as a quoted-string ("host:port" needs quotes because of the colon).
func writeQuotedIfNeeded(b *strings.Builder, v string) {
	token := v != ""
	for i := 0; i < len(v) && token; i++ {
		c := v[i]
		token = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
	}
	if token {
		b.WriteString(v)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
}
