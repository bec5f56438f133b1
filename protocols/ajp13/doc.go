// Package ajp13 is junction's AJP13 front end: it lets Apache httpd
// (mod_proxy_ajp, mod_jk) forward requests to junction as it would to a
// servlet container, and serves them with any http.Handler.
//
// Protocol: the AJPv13 document of the Tomcat connectors project
// (https://tomcat.apache.org/connectors-doc/ajp/ajpv13a.html) and Apache's
// mod_proxy_ajp (https://httpd.apache.org/docs/2.4/mod/mod_proxy_ajp.html),
// checked against what Apache actually sends (testdata/fuzz holds captured
// packets).
//
// # Scope
//
// Connections are pooled by the web server and carry sequential requests;
// CPING is answered with CPONG between requests; SHUTDOWN is refused and the
// connection closed; any other unexpected packet closes the connection with
// one log line. Each FORWARD_REQUEST becomes an *http.Request whose context
// carries the CGI-style variables (package vars) rendered from it when a
// backend asks (vars.Lookup renders just one): REQUEST_METHOD,
// SERVER_PROTOCOL, REQUEST_URI (the raw, still percent-encoded req_uri plus
// "?" and the query string), QUERY_STRING, REMOTE_ADDR, REMOTE_HOST,
// REMOTE_PORT (from the AJP_REMOTE_PORT attribute), SERVER_NAME,
// SERVER_PORT, SERVER_ADDR (from AJP_LOCAL_ADDR), HTTPS=on, AUTH_TYPE,
// REMOTE_USER, SSL_CLIENT_CERT, SSL_CIPHER, SSL_SESSION_ID,
// SSL_CIPHER_USEKEYSIZE, SSL_PROTOCOL, CONTENT_TYPE and CONTENT_LENGTH,
// plus JUNCTION_ROUTE (the listener's Route) and AJP_SESSION_ROUTE (the
// route attribute the web server sent). Headers are r.Header only: the
// backends that need HTTP_* variables make them from it (vars.HeaderVar).
// The request path is the req_uri decoded once.
//
// A request that is well framed but breaks vars.Validate (a method that is
// not a token, a header name that is not one, CR, LF or NUL in a header
// value or in a value rendered as a variable) is answered 400 and the
// connection closed; no handler sees it.
//
// # Security
//
// An AJP port is a trust boundary: the web server vouches for the client
// address, the authenticated user and TLS facts. Bind it to loopback, and
// set Secret (mod_proxy_ajp secret=, mod_jk worker secret) whenever other
// hosts can reach it. Request attributes never choose files or override
// junction's decisions (Ghostcat, CVE-2020-1938): only AJP_REMOTE_PORT,
// AJP_LOCAL_ADDR and AJP_SSL_PROTOCOL become variables; javax.servlet.*
// and every other name (including those set with SetEnv AJP_*) are dropped,
// and no attribute can produce SCRIPT_NAME, SCRIPT_FILENAME, PATH_INFO,
// PATH_TRANSLATED or DOCUMENT_ROOT. The context and servlet_path
// attributes are decoded but not used.
//
// # Request bodies
//
// With a Content-Length the body streams as the handler reads it (the web
// server sends the first chunk unasked; junction asks for the rest with
// GET_BODY_CHUNK). A chunked request body (Transfer-Encoding: chunked, no
// Content-Length; the web server has already removed the chunk framing)
// is exposed as ContentLength -1 with r.TransferEncoding = ["chunked"] and
// streams until the web server's empty chunk. Backends that need a length
// (the CGI runner) answer 411 Length Required. A chunk larger than asked
// for or than the announced length, or a body that stalls longer than
// ReadTimeout, fails the read and closes the connection with a logged
// reason. After the handler returns, up to 256 KiB of unread body is read
// and discarded so the connection can be reused; a longer remainder closes
// it (END_RESPONSE reuse=0).
//
// # Responses
//
// Status and headers go out in one SEND_HEADERS packet before the first
// body chunk (a WriteHeader code outside 100–999 is sent as 500 and
// logged, as every junction codec does); body chunks hold at most
// PacketSize-8 bytes and are flushed when the handler calls Flush
// (http.Flusher), so streaming works. When the whole body fits in one
// chunk and the handler set no Content-Length, junction adds it. A handler
// that writes more than the Content-Length it set has the declared bytes
// sent and the rest cut (its writes return http.ErrContentLength, logged
// once), and END_RESPONSE says reuse=0. While the handler runs with the
// request body consumed, junction watches the connection: the web server
// closing it (the client went away) cancels the request context.
//
// # Deadlines
//
// IdleTimeout bounds the wait for a request's first byte; ReadTimeout
// bounds the rest of its packet from that byte (one deadline, as in every
// junction codec) and each body packet; WriteTimeout bounds each write
// (0: 60s, negative: none). The ResponseWriter supports
// http.ResponseController's SetWriteDeadline and SetReadDeadline: a
// handler's deadline replaces the timeout for the rest of its request and
// takes effect at once. A write blocked on a web server that reads
// nothing fails when it passes (a backend aborting a response), and the
// connection closes without END_RESPONSE, so the web server sees the
// response cut; a body read it ends fails the body, and END_RESPONSE says
// reuse=0.
//
// # Sticky sessions
//
// mod_proxy_balancer with stickysession=JSESSIONID|jsessionid sends a
// request whose session id ends in ".NAME" (cookie JSESSIONID=abc.NAME or
// ";jsessionid=abc.NAME" in the URL) to the BalancerMember with route=NAME;
// mod_jk with sticky_session does the same with the worker name (or its
// route). Junction needs to do nothing for this beyond answering on that
// member: give each instance's listener a Route equal to its member's
// route, and have the application append "."+JUNCTION_ROUTE to the session
// ids it creates.
package ajp13
