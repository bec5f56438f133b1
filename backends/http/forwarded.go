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

	xff := joinValues(in.Header.Values("X-Forwarded-For"))
	if client.IsValid() {
		ip := client.String()
		switch {
		case xff == "":
			xff = ip
		case lastElement(xff) != ip:
			// The front server may already have appended the client
			// (nginx $proxy_add_x_forwarded_for); do not list it twice.
			xff += ", " + ip
		}
	}
	if xff != "" {
		out.Set("X-Forwarded-For", xff)
	}
	out.Set("X-Forwarded-Proto", proto)
	if in.Host != "" {
		out.Set("X-Forwarded-Host", in.Host)
	}

	elem := "for=" + forNode(client)
	if in.Host != "" {
		elem += ";host=" + quoteIfNeeded(in.Host)
	}
	elem += ";proto=" + proto
	if prior := joinValues(in.Header.Values("Forwarded")); prior != "" {
		elem = prior + ", " + elem
	}
	out.Set("Forwarded", elem)
}

// clientAddr parses r.RemoteAddr, which the codecs set to "ip:port" or to
// a bare IP when the front server sent no port. The zero Addr means
// unknown (a Unix-socket peer, or nothing at all).
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

// forNode renders the client for RFC 7239's for= parameter: IPv6 addresses
// are bracketed and quoted (section 6), an unknown client is "unknown".
func forNode(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is6():
		return `"[` + a.String() + `]"`
	}
	return a.String()
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

// quoteIfNeeded returns v as an RFC 7230 token when it is one, else as a
// quoted-string ("host:port" needs quotes because of the colon).
func quoteIfNeeded(v string) string {
	token := v != ""
	for i := 0; i < len(v) && token; i++ {
		c := v[i]
		token = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
	}
	if token {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}
