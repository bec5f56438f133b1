// Package authorizer puts a FastCGI application in the Authorizer role
// (FastCGI 1.0, section 6.3,
// https://fastcgi-archives.github.io/FastCGI_Specification.html#S6.3) in
// front of any backend: before a request reaches the backend it guards,
// junction asks the authorizer whether it may, the way lighttpd's
// "mode" => "authorizer" and Apache's mod_authnz_fcgi do.
//
// The exchange, per request:
//
//   - junction sends the request's CGI variables (package cgienv's, with
//     SCRIPT_FILENAME set to Options.Script) in an FCGI_AUTHORIZER request,
//     without CONTENT_LENGTH, PATH_INFO, PATH_TRANSLATED and SCRIPT_NAME
//     (the spec's rule, applied by gofast's FilterAuthReqParams) and with
//     an empty STDIN: the authorizer never sees the request body, and
//     junction reads none of it. The body stays unread until the request
//     is allowed, and then flows to the backend as it would without an
//     authorizer.
//   - A 200 answer allows the request. The answer's Variable-NAME headers
//     become variables of the request (see below); its other headers and
//     its body are dropped, as the spec says.
//   - Any other answer goes to the client as the authorizer gave it:
//     status, headers (hop-by-hop ones dropped) and body. A 401 with
//     WWW-Authenticate, a 403 with a page, a 302 with Location.
//   - An authorizer that cannot be reached, that does not answer in time
//     or whose answer is broken fails the request before the backend runs:
//     502 when no instance could be reached or the answer was malformed or
//     incomplete, 503 when the application said it is overloaded
//     (FCGI_OVERLOADED), 504 when the answer did not come within
//     Options.Timeout. The router writes the error page and logs the
//     reason; nothing of the authorizer's failure reaches the client.
//
// Variables. An authorizer's "Variable-NAME: value" headers reach the
// backend as:
//
//   - CGI variables NAME for cgi and fastcgi backends (environment of a
//     CGI script, FastCGI params of a php-fpm pool), as lighttpd and
//     Apache's mod_authnz_fcgi set them in the script's environment. They
//     are added to the request's variables (package vars) and so take the
//     path the front server's variables take: they override a variable of
//     the same name the front server sent (REMOTE_USER, AUTH_TYPE), and
//     cgienv's deny list still applies.
//   - request headers "Variable-NAME: value" for http pools
//     (Options.Headers), which have no environment.
//   - both (Options.Both) on a route whose shadow backend is of the
//     other kind, so that the copy it is sent carries them in the form
//     the shadow reads.
//
// NAME is upper-cased: gofast's response parser canonicalizes header names
// ("Variable-REMOTE_USER" arrives as "Variable-Remote_user"), so the
// authorizer's spelling cannot be recovered, and CGI variables are upper
// case by convention. Names that are not portable environment names, the
// HTTP_* family (which describes request headers), the variables that
// describe the request itself and steer which script runs
// (SCRIPT_FILENAME, REQUEST_URI, ...; see reserved) and the names cgienv
// denies (LD_PRELOAD, ...) are dropped with a warning. On a guarded
// route, Variable-* headers the client sent are removed before the request
// reaches the backend, so a backend can trust what it sees. A REMOTE_USER
// among the variables is also reported to the request's backends.Upstream
// (SetUser), so the access log shows the user the backend was told of.
//
// Instances are tried round robin; an instance that refuses the
// connection (or does not accept it within Options.DialTimeout) is
// skipped for the next one, each at most once per request. With
// Options.KeepAlive, connections are kept (gofast always sets
// FCGI_KEEP_CONN) and reused most recently used first; a kept connection
// that fails before the first byte of its answer is replaced by a fresh
// one once.
//
// Built on github.com/yookoala/gofast (v0.8.0), the FastCGI library the
// project chose for the Authorizer role: its client (Client.Do with
// RoleAuthorizer, FilterAuthReqParams, ResponsePipe.WriteTo) does the
// exchange. Its Authorizer.Wrap middleware is not used as is, for what
// it lacks: it reads the whole request body into memory and sends it to
// the authorizer, never closes its connections, answers its own failures
// with 500 and the error text, logs every variable with the standard log
// package and corrupts a denial when the application wrote to STDERR. This
// package adds what the exchange needs around gofast's client: dial and
// answer timeouts, a watchdog that ends the exchange (gofast's reader can
// block for good when its response parser gives up early, see below), a
// bound on the
// answer it holds, detection of an exchange that ended without
// END_REQUEST, END_REQUEST's protocol status, connection reuse and
// failover.
//
// Limits inherited from gofast: a head line of the answer longer than
// 1 KiB (with its CR LF) is refused, and so are a head line without a
// colon, a Status that does not start with three digits, and a head
// without Status, Content-Type or Location; each is a 502. gofast's
// parser stops reading midway on such a head, which would leave its
// reader blocked until the timeout; junction checks the head with the
// same rules as it arrives and ends the exchange at once instead. gofast
// takes a Status line only when spelled "Status" (a lower-case "status:"
// is an ordinary header to it).
package authorizer
