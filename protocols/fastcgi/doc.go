// Package fastcgi is junction's FastCGI 1.0 front end: it accepts
// connections from a web server (nginx fastcgi_pass, lighttpd mod_fastcgi,
// Apache mod_proxy_fcgi, cgi-fcgi) and serves each RESPONDER request with
// an http.Handler.
//
// Specification: FastCGI Specification 1.0, Open Market, 1996
// (fastcgi-archives.github.io/FastCGI_Specification.html).
//
// Scope:
//   - RESPONDER role only. AUTHORIZER and FILTER requests are answered with
//     END_REQUEST protocolStatus FCGI_UNKNOWN_ROLE.
//   - Multiplexing: many request ids in flight on one connection, each with
//     its own context, answered through one mutex-guarded record writer.
//     nginx, lighttpd and Apache never multiplex, but the protocol allows it.
//   - FCGI_GET_VALUES is answered from the Server's limits; any other
//     management record gets FCGI_UNKNOWN_TYPE.
//   - ABORT_REQUEST cancels that request's context and its body; END_REQUEST
//     follows when the handler returns.
//   - Started by the web server (lighttpd bin-path, spawn-fcgi, mod_fcgid),
//     fd 0 is the listening socket: see ListenerFromStdin and
//     WebServerAddrsFromEnv.
//
// Request bodies. FastCGI has no flow control: STDIN records of all
// requests on a connection arrive interleaved on one stream, read by one
// reader goroutine. Each request has a bounded in-memory body buffer
// (bodyMemLimit). When it is full:
//   - if the request is the only one active on its connection (every stock
//     web server), the reader waits until the handler consumes data. This
//     is plain TCP back-pressure and costs nobody else anything;
//   - otherwise the reader spools the overflow to a temporary file, so a
//     slow request never stalls its neighbours. A request whose spool would
//     exceed bodySpoolLimit (ErrBodyTooLarge), or the bytes left in the
//     listener's Server.SpoolBudget (spool.ErrFull), has its body failed
//     and its context cancelled (logged), and is answered 503 Service
//     Unavailable with Retry-After if its response had not started (else
//     its STDOUT just ends); the connection carries on.
//
// Responses are written CGI-style ("Status: 200 OK\r\nHeader: v\r\n\r\n",
// package cgihead) on STDOUT in records of at most 65535 bytes;
// http.Flusher sends buffered data at once, so streaming responses stream.
// A WriteHeader code outside 100–999 is sent as 500 and logged.
//
// Limits: MaxHeaderBytes bounds each request's PARAMS (beyond it the
// request is answered 431), MaxRequestsPerConn and MaxRequests bound
// requests in flight (beyond them END_REQUEST FCGI_OVERLOADED, or
// FCGI_CANT_MPX_CONN when multiplexing is off, with no state kept),
// MaxConns bounds connections. PARAMS that break vars.Validate (a method
// that is not a token, CR, LF or NUL in a value) are answered 400 before
// any handler runs. Protocol violations (bad version, request id
// 0 on an application record, a record after its stream ended, a second
// BEGIN_REQUEST for an id in use) close the connection with one logged
// reason.
package fastcgi
