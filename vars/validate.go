package vars

import (
	"net/http"
	"strconv"
	"strings"
)

// InvalidError reports a request that was framed correctly but cannot be
// served as sent: a codec answers it 400 Bad Request and no handler sees
// it. Request and Validate return it.
type InvalidError struct {
	// Part names what is wrong: "method", "request target", "host",
	// "header name", "header value" or "variable".
	Part string
	// Name is the header or variable concerned (for a request target,
	// the variable it came from), or "". Values are left out: they may
	// hold credentials.
	Name string
	// Err is the underlying cause when there is one (ErrDuplicate, a URL
	// parse error).
	Err error
}

func (e *InvalidError) Error() string {
	s := "vars: invalid " + e.Part
	if e.Name != "" {
		s += " " + strconv.Quote(e.Name)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *InvalidError) Unwrap() error { return e.Err }

// Validate is the one check of a decoded request, applied by every codec
// where it builds the *http.Request (Request does it for SCGI and
// FastCGI), before any handler runs. v holds the variables that came with
// r (nil when a codec renders them later and checks each with CheckVar).
// It returns an *InvalidError when
//   - the method is not an RFC 9110 token;
//   - the request target is empty or holds a control character;
//   - the host holds CR, LF or NUL;
//   - a header name is not a token, or a header value holds CR, LF or NUL;
//   - a variable breaks CheckVar's rule.
//
// Field values are not held to RFC 9110's full grammar: front servers
// pass what clients send (obsolete text, tabs), and what matters here is
// that no value can split a head or an environment entry downstream.
func Validate(r *http.Request, v Vars) error {
	return validate(r, v, true)
}

// validate is Validate; with headers false the header fields are not
// walked, because they were made from v's HTTP_* variables, whose names
// and values CheckVar has the same rules for (Request's case).
func validate(r *http.Request, v Vars, headers bool) error {
	if !ValidToken(r.Method) {
		return &InvalidError{Part: "method"}
	}
	if !validTarget(r.RequestURI) {
		return &InvalidError{Part: "request target"}
	}
	if !ValidValue(r.Host) {
		return &InvalidError{Part: "host"}
	}
	if headers {
		for name, values := range r.Header {
			if !ValidToken(name) {
				return &InvalidError{Part: "header name", Name: name}
			}
			for _, s := range values {
				if !ValidValue(s) {
					return &InvalidError{Part: "header value", Name: name}
				}
			}
		}
	}
	for _, kv := range v {
		if err := CheckVar(kv.Name, kv.Value); err != nil {
			return err
		}
	}
	return nil
}

// CheckVar applies Validate's rule to one variable: its value holds no
// CR, LF or NUL, except that a PEM certificate variable may hold LF (see
// pemVar); an HTTP_* name, which becomes a header name, must be a token
// after the prefix. A codec that renders its variables only when a
// backend asks (AJP13) checks each value it will render with it.
func CheckVar(name, value string) error {
	if !ValidValue(value) && !(pemVar(name) && validPEM(value)) {
		return &InvalidError{Part: "variable", Name: name}
	}
	if h, ok := strings.CutPrefix(name, "HTTP_"); ok && h != "" && !ValidToken(h) {
		return &InvalidError{Part: "header name", Name: name}
	}
	return nil
}

// pemVar reports whether name holds a certificate in PEM form, whose
// lines end in LF: Apache mod_ssl's SSL_CLIENT_CERT, SSL_SERVER_CERT and
// SSL_CLIENT_CERT_CHAIN_n (SSLOptions +ExportCertData, which
// mod_proxy_fcgi and mod_proxy_scgi pass on), nginx's $ssl_client_raw_cert
// or $ssl_client_cert in a fastcgi_param/scgi_param of that name, and
// AJP's ssl_cert attribute, rendered as SSL_CLIENT_CERT.
func pemVar(name string) bool {
	return name == "SSL_CLIENT_CERT" || name == "SSL_SERVER_CERT" || strings.HasPrefix(name, "SSL_CLIENT_CERT_CHAIN_")
}

// validPEM reports whether s holds no CR or NUL (LF is allowed).
func validPEM(s string) bool {
	return strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, 0) < 0
}

// validTarget reports whether a request target is non-empty and free of
// control characters (which url.ParseRequestURI refuses as well, but an
// AJP "*" target is not parsed).
func validTarget(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
