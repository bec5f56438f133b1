package authorizer

import (
	"net/http"
	"slices"
	"strings"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgienv"
	"github.com/junction-gw/junction/vars"
)

// VariablePrefix starts the answer headers that carry variables, and the
// request headers that carry them to an http pool.
const VariablePrefix = "Variable-"

// reserved are variables that describe the request itself or decide which
// script runs: an authorizer passes identities and attributes, it does not
// rewrite the request (a guarded cgi backend resolves its script from
// SCRIPT_FILENAME, SCRIPT_NAME, PATH_INFO and REQUEST_URI).
var reserved = map[string]bool{
	"SCRIPT_FILENAME": true, "SCRIPT_NAME": true, "PATH_INFO": true, "PATH_TRANSLATED": true,
	"REQUEST_METHOD": true, "REQUEST_URI": true, "DOCUMENT_URI": true, "DOCUMENT_ROOT": true,
	"QUERY_STRING": true, "CONTENT_LENGTH": true, "CONTENT_TYPE": true, "GATEWAY_INTERFACE": true,
	"SERVER_SOFTWARE": true, "SERVER_PROTOCOL": true, "SERVER_NAME": true, "SERVER_PORT": true,
	"SERVER_ADDR": true, "REMOTE_ADDR": true, "REMOTE_PORT": true, "HTTPS": true, "REQUEST_SCHEME": true,
	"REDIRECT_STATUS": true, "REDIRECT_URL": true, "REDIRECT_QUERY_STRING": true,
}

// variables returns the variables of an allowing answer, upper-cased
// names in sorted order, the last value of a repeated one. Unusable names
// and values are logged and dropped.
func (a *Authorizer) variables(r *http.Request, h http.Header) vars.Vars {
	var out vars.Vars
	for k, vs := range h {
		if len(k) <= len(VariablePrefix) || !strings.EqualFold(k[:len(VariablePrefix)], VariablePrefix) || len(vs) == 0 {
			continue
		}
		name := strings.ToUpper(k[len(VariablePrefix):])
		value := vs[len(vs)-1]
		switch {
		case !cgienv.ValidName(name) || strings.HasPrefix(name, "HTTP_") || reserved[name] || cgienv.Denied(name):
			a.log.Warn("authorizer variable dropped: name not allowed", "authorizer", a.name, "name", name, "uri", r.RequestURI)
			continue
		case strings.ContainsAny(value, "\x00\r\n"):
			a.log.Warn("authorizer variable dropped: value contains NUL, CR or LF", "authorizer", a.name, "name", name, "uri", r.RequestURI)
			continue
		}
		out = append(out, vars.Var{Name: name, Value: value})
	}
	slices.SortFunc(out, func(x, y vars.Var) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// allowed returns r as the guarded backend gets it: without Variable-*
// headers the client sent, with the authorizer's variables as CGI
// variables, as Variable-NAME headers (Options.Headers), or both
// (Options.Both). The body is r's, unread. A REMOTE_USER among the
// variables is reported to r's backends.Upstream: the access log shows
// the user the backend was told of, not the front server's.
func (a *Authorizer) allowed(r *http.Request, ans *answer) *http.Request {
	vs := a.variables(r, ans.header)
	if u, ok := vs.Lookup("REMOTE_USER"); ok {
		backends.UpstreamFromContext(r.Context()).SetUser(u)
	}
	forged := false
	for k := range r.Header {
		if isVariableHeader(k) {
			forged = true
			break
		}
	}
	ctx := r.Context()
	if a.cgiVars && len(vs) > 0 {
		front := vars.FromContext(ctx)
		names := make([]string, len(vs))
		for i, kv := range vs {
			names[i] = kv.Name
		}
		merged := append(front.Without(names...), vs...)
		ctx = vars.NewContext(ctx, merged)
	}
	if !forged && (!a.headers || len(vs) == 0) {
		if ctx == r.Context() {
			return r
		}
		return r.WithContext(ctx)
	}
	out := r.Clone(ctx) // the header map is changed; the body stays r's
	for k := range out.Header {
		if isVariableHeader(k) {
			delete(out.Header, k)
		}
	}
	if a.headers {
		for _, kv := range vs {
			out.Header.Set(VariablePrefix+kv.Name, kv.Value)
		}
	}
	return out
}

func isVariableHeader(k string) bool {
	return len(k) >= len(VariablePrefix) && strings.EqualFold(k[:len(VariablePrefix)], VariablePrefix)
}
