package ajp13

import "fmt"

// methods maps AJP method codes 1..27 to method names. Code 0xFF means
// "look at the stored_method attribute".
var methods = [...]string{
	1: "OPTIONS", 2: "GET", 3: "HEAD", 4: "POST", 5: "PUT", 6: "DELETE", 7: "TRACE",
	8: "PROPFIND", 9: "PROPPATCH", 10: "MKCOL", 11: "COPY", 12: "MOVE", 13: "LOCK",
	14: "UNLOCK", 15: "ACL", 16: "REPORT", 17: "VERSION-CONTROL", 18: "CHECKIN",
	19: "CHECKOUT", 20: "UNCHECKOUT", 21: "SEARCH", 22: "MKWORKSPACE", 23: "UPDATE",
	24: "LABEL", 25: "MERGE", 26: "BASELINE-CONTROL", 27: "MKACTIVITY",
}

const methodStored = 0xFF

// requestHeaders maps request header codes 0xA001..0xA00E (low byte as
// index) to canonical header names.
var requestHeaders = [...]string{
	0x01: "Accept", 0x02: "Accept-Charset", 0x03: "Accept-Encoding", 0x04: "Accept-Language",
	0x05: "Authorization", 0x06: "Connection", 0x07: "Content-Type", 0x08: "Content-Length",
	0x09: "Cookie", 0x0A: "Cookie2", 0x0B: "Host", 0x0C: "Pragma", 0x0D: "Referer",
	0x0E: "User-Agent",
}

// Attribute codes of a FORWARD_REQUEST.
type attrCode byte

const (
	attrContext      attrCode = 0x01
	attrServletPath  attrCode = 0x02
	attrRemoteUser   attrCode = 0x03
	attrAuthType     attrCode = 0x04
	attrQueryString  attrCode = 0x05
	attrRoute        attrCode = 0x06
	attrSSLCert      attrCode = 0x07
	attrSSLCipher    attrCode = 0x08
	attrSSLSession   attrCode = 0x09
	attrReqAttribute attrCode = 0x0A
	attrSSLKeySize   attrCode = 0x0B
	attrSecret       attrCode = 0x0C
	attrStoredMethod attrCode = 0x0D
	attrDone         attrCode = 0xFF
)

// maxHeaders bounds the number of request headers in one FORWARD_REQUEST
// (Apache's own LimitRequestFields default is 100).
const maxHeaders = 500

// header is one request header: code is 0xA001..0xA00E for a coded header
// (name is then its canonical name) and 0 for one sent by name.
type header struct {
	code  uint16
	name  string
	value string
}

// attribute is one FORWARD_REQUEST attribute. name is set for
// req_attribute only; keySize for ssl_key_size only.
type attribute struct {
	code    attrCode
	name    string
	value   string
	keySize uint16
}

// forwardRequest is a decoded FORWARD_REQUEST packet, exactly as sent.
type forwardRequest struct {
	methodCode byte
	method     string // resolved: from the code, or stored_method for 0xFF
	protocol   string
	uri        string // as sent: mod_proxy_ajp and mod_jk send it percent-encoded
	remoteAddr string
	remoteHost string // "" when the peer sent a null string
	serverName string
	serverPort uint16
	isSSL      bool
	headers    []header
	attrs      []attribute
}

// attr returns the value of the first attribute with the given code.
func (f *forwardRequest) attr(code attrCode) (attribute, bool) {
	for _, a := range f.attrs {
		if a.code == code {
			return a, true
		}
	}
	return attribute{}, false
}

// decodeLimits bounds what a peer may send in one request head.
type decodeLimits struct {
	maxHeaderBytes int // sum of header name and value lengths
	maxHeaders     int
}

// decodeForwardRequest decodes a FORWARD_REQUEST payload (type byte
// included). Every length is checked against the payload; strings must be
// NUL-terminated; trailing bytes after the terminator are an error.
func decodeForwardRequest(p []byte, lim decodeLimits) (*forwardRequest, error) {
	// Strings share one copy of the payload: one allocation instead of one
	// per header name and value.
	d := &decoder{b: p, s: string(p)}
	if t := d.u8("packet type"); d.err == nil && inType(t) != typeForwardRequest {
		return nil, fmt.Errorf("ajp13: packet type %d is not FORWARD_REQUEST: %w", t, ErrMalformed)
	}
	f := &forwardRequest{}
	f.methodCode = d.u8("method")
	var null bool
	f.protocol, null = d.str("protocol")
	if null {
		d.fail("null protocol")
	}
	f.uri, null = d.str("req_uri")
	if null || (d.err == nil && f.uri == "") {
		d.fail("empty req_uri")
	}
	f.remoteAddr, _ = d.str("remote_addr")
	f.remoteHost, _ = d.str("remote_host")
	f.serverName, _ = d.str("server_name")
	f.serverPort = d.u16("server_port")
	f.isSSL = d.u8("is_ssl") != 0
	n := int(d.u16("num_headers"))
	if d.err != nil {
		return nil, d.err
	}
	if n > lim.maxHeaders {
		return nil, fmt.Errorf("ajp13: %d request headers (limit %d): %w", n, lim.maxHeaders, ErrTooLarge)
	}
	f.headers = make([]header, 0, n)
	size := 0
	for i := 0; i < n && d.err == nil; i++ {
		h := decodeHeaderName(d)
		h.value, _ = d.str("header value")
		if d.err != nil {
			break
		}
		size += len(h.name) + len(h.value)
		if size > lim.maxHeaderBytes {
			return nil, fmt.Errorf("ajp13: request headers exceed %d bytes: %w", lim.maxHeaderBytes, ErrTooLarge)
		}
		f.headers = append(f.headers, h)
	}
	decodeAttributes(d, f)
	if d.err != nil {
		return nil, d.err
	}
	if d.off != len(p) {
		return nil, fmt.Errorf("ajp13: %d bytes after the attribute terminator: %w", len(p)-d.off, ErrMalformed)
	}
	if err := f.resolveMethod(); err != nil {
		return nil, err
	}
	return f, nil
}

func decodeHeaderName(d *decoder) header {
	v := d.peek16("header name")
	if d.err != nil {
		return header{}
	}
	if v&0xFF00 == 0xA000 {
		d.u16("header code")
		i := int(v & 0xFF)
		if i == 0 || i >= len(requestHeaders) {
			d.fail("unknown request header code %#04x", v)
			return header{}
		}
		return header{code: v, name: requestHeaders[i]}
	}
	name, null := d.str("header name")
	if d.err == nil && null {
		d.fail("null header name")
	}
	return header{name: name}
}

func decodeAttributes(d *decoder, f *forwardRequest) {
	seen := 0 // bit set of attribute codes seen, req_attribute excluded
	for d.err == nil {
		c := attrCode(d.u8("attribute code"))
		if d.err != nil || c == attrDone {
			return
		}
		a := attribute{code: c}
		switch c {
		case attrContext, attrServletPath, attrRemoteUser, attrAuthType, attrQueryString,
			attrRoute, attrSSLCert, attrSSLCipher, attrSSLSession, attrSecret, attrStoredMethod:
			a.value, _ = d.str(c.String())
		case attrReqAttribute:
			var null bool
			a.name, null = d.str("req_attribute name")
			if d.err == nil && (null || a.name == "") {
				d.fail("empty req_attribute name")
			}
			a.value, _ = d.str("req_attribute value")
		case attrSSLKeySize:
			a.keySize = d.u16("ssl_key_size")
		default:
			d.fail("unknown attribute code %#02x", byte(c))
			return
		}
		if c != attrReqAttribute {
			if seen&(1<<c) != 0 {
				d.fail("repeated attribute %s", c)
				return
			}
			seen |= 1 << c
		}
		if d.err == nil {
			f.attrs = append(f.attrs, a)
		}
	}
}

func (f *forwardRequest) resolveMethod() error {
	stored, hasStored := f.attr(attrStoredMethod)
	switch {
	case f.methodCode == methodStored:
		if !hasStored {
			return fmt.Errorf("ajp13: method code 0xFF without a stored_method: %w", ErrMalformed)
		}
		f.method = stored.value
	case int(f.methodCode) > 0 && int(f.methodCode) < len(methods):
		f.method = methods[f.methodCode]
	default:
		return fmt.Errorf("ajp13: unknown method code %d: %w", f.methodCode, ErrMalformed)
	}
	return nil
}

func (c attrCode) String() string {
	switch c {
	case attrContext:
		return "context"
	case attrServletPath:
		return "servlet_path"
	case attrRemoteUser:
		return "remote_user"
	case attrAuthType:
		return "auth_type"
	case attrQueryString:
		return "query_string"
	case attrRoute:
		return "route"
	case attrSSLCert:
		return "ssl_cert"
	case attrSSLCipher:
		return "ssl_cipher"
	case attrSSLSession:
		return "ssl_session"
	case attrReqAttribute:
		return "req_attribute"
	case attrSSLKeySize:
		return "ssl_key_size"
	case attrSecret:
		return "secret"
	case attrStoredMethod:
		return "stored_method"
	case attrDone:
		return "terminator"
	}
	return fmt.Sprintf("attribute(%#02x)", byte(c))
}
