package vars

// ValidToken reports whether s is an RFC 9110 token (section 5.6.2): the
// syntax of a method and of a field name.
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

// tokenChar is RFC 9110's tchar.
var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// ValidValue reports whether s holds no CR, LF or NUL: the bytes that let
// a value end its own field and start another in an HTTP or CGI head, or
// cut a C string (an environment entry) short. It is the rule for request
// and response field values alike.
func ValidValue(s string) bool {
	for i := 0; i < len(s); i++ {
		// One comparison for nearly every byte: all three are <= '\r'.
		if c := s[i]; c <= '\r' && (c == '\r' || c == '\n' || c == 0) {
			return false
		}
	}
	return true
}

// HeaderVar returns the CGI meta-variable of request header key (RFC 3875
// section 4.1.18): "HTTP_" and the name upper-cased with "-" as "_"
// ("X-Forwarded-For" is HTTP_X_FORWARDED_FOR). It reports false for a
// header no variable may carry:
//   - Proxy: HTTP_PROXY is what CGI programs and libraries read as their
//     outgoing proxy (httpoxy, CVE-2016-5385);
//   - a name containing "_" or any byte but a letter, digit or "-": "X_Foo"
//     would pose as "X-Foo" once rendered (nginx and Apache httpd drop
//     these too), and the others make no portable environment name;
//   - Content-Type and Content-Length, which RFC 3875 passes as
//     CONTENT_TYPE and CONTENT_LENGTH.
//
// The reverse mapping, from the HTTP_* variables a front server sent to
// header names, is Request's.
func HeaderVar(key string) (string, bool) {
	if name, ok := commonVars[key]; ok {
		return name, name != ""
	}
	b := make([]byte, 0, len("HTTP_")+len(key))
	b = append(b, "HTTP_"...)
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-':
			c = '_'
		default:
			return "", false
		}
		b = append(b, c)
	}
	switch name := string(b); name {
	case "HTTP_", "HTTP_PROXY", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH":
		return "", false
	default:
		return name, true
	}
}

// commonVars maps the canonical names of frequent request headers to their
// variables ("" for those HeaderVar refuses), so the usual header needs no
// allocation.
var commonVars = func() map[string]string {
	m := make(map[string]string, len(commonHeaders)+3)
	for cgi, key := range commonHeaders {
		m[key] = "HTTP_" + cgi
	}
	m["Proxy"], m["Content-Type"], m["Content-Length"] = "", "", ""
	m["Host"] = "HTTP_HOST"
	return m
}()
