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
// A body is CONTENT_LENGTH bytes, whatever STDIN carries: a STDIN that
// ends short fails the read (io.ErrUnexpectedEOF), and so does one that
// carries more, at the latest in place of the last declared byte, which
// is delivered only once the empty STDIN record shows the body is exactly
// that long: a handler that reads exactly CONTENT_LENGTH bytes (the CGI
// backend feeding a script) never takes a malformed body for a complete
// one.
//
// Responses are written CGI-style ("Status: 200 OK\r\nHeader: v\r\n\r\n",
// package cgihead) on STDOUT in records of at most 65535 bytes;
// http.Flusher sends buffered data at once, so streaming responses stream.
// A WriteHeader code outside 100–999 is sent as 500 and logged. A handler
// that writes more than the Content-Length it set has the declared bytes
// sent and the rest cut (its writes return http.ErrContentLength, logged
// once), and the connection closes after its END_REQUEST whatever
// KEEP_CONN asked.
//
// Deadlines. IdleTimeout bounds a connection with no request in flight.
// ReadTimeout bounds each request's head, from the first byte of its
// BEGIN_REQUEST to the empty PARAMS record, as one deadline (the rule of
// every junction codec: a peer trickling bytes is cut off when a silent
// one would be, so it cannot hold one of MaxConns connections), each pause
// in a STDIN stream, and any other record from its first byte.
// WriteTimeout bounds each record written (0: 60s, negative: none). The
// ResponseWriter supports http.ResponseController's SetWriteDeadline and
// SetReadDeadline. A read deadline fails a body read waiting for STDIN. A
// write deadline is how a backend aborts a response: while the request is
// alone on its connection (always, behind nginx, Apache and lighttpd) it
// replaces WriteTimeout at once, a write blocked on a web server that
// reads nothing fails when it passes, and the connection closes without
// END_REQUEST, so the web server sees the response cut. A request sharing
// a multiplexed connection must not take the others down with it: a
// record already being written is not cut, but once its deadline has
// passed its writes fail at once and it ends with END_REQUEST appStatus 1
// and without the rest of its STDOUT (if it is alone again by then, the
// connection closes instead).
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
