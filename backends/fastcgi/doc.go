// Package fastcgi sends requests to one FastCGI application instance
// (php-fpm, or any FastCGI responder listening on TCP or a Unix socket),
// in the RESPONDER role of the FastCGI 1.0 specification
// (https://fastcgi-archives.github.io/FastCGI_Specification.html).
//
// A Backend is one instance. Pools of instances, retries and health
// bookkeeping belong to the balancer, which holds one Backend per instance
// address and calls Check for active health checks.
//
// # Which script runs
//
// The script is junction's decision, made from the decoded URL path:
// StripPrefix is removed, the rest is split after the first segment that
// ends in the extension of Index (".php" by default) — what nginx's
// fastcgi_split_path_info ^(.+?\.php)(/.*)$ does — and Index is appended
// when the script part ends in "/". SCRIPT_FILENAME is Root plus the script
// part, SCRIPT_NAME is StripPrefix plus it, PATH_INFO the rest, and
// DOCUMENT_ROOT is Root (also over a DOCUMENT_ROOT the front server sent:
// it names the front server's files, not the instance's), PATH_TRANSLATED
// Root plus PATH_INFO. A path with a NUL is refused with 400 and one with
// a ".." segment (also sent as %2e%2e) with 403, so SCRIPT_FILENAME never
// leaves Root lexically. The instance may run on another host, so junction
// does not look at the file system: whether the file exists, and
// symlinks, are the instance's business (php-fpm answers "File not
// found." with status 404, and its security.limit_extensions refuses
// non-PHP files).
//
// The parameters come from backends/cgienv, the builder the CGI backend
// uses, so header rules (no HTTP_PROXY, no "_" in header names) are the
// same, and are sent in its order (sorted by name); PATH is not sent.
//
// # Connections
//
// By default each request dials its own connection (DialTimeout) and
// closes it after the response: a Unix-socket or loopback connect is
// cheap, and a fresh connection can never carry a previous request's
// failure. MaxConns bounds the requests in flight with a semaphore; a
// request that cannot get a slot within DialTimeout fails with
// backends.ErrOverloaded.
//
// With KeepAlive, requests carry FCGI_KEEP_CONN and a connection whose
// response ended cleanly (END_REQUEST with REQUEST_COMPLETE, nothing
// after it, the request written whole) is kept, at most KeepAlive of them
// for at most KeepAliveTimeout (package backends/internal/idle). php-fpm
// gives every open connection a worker of its own, idle or not, so the
// connections open to it must stay within pm.max_children: keep-alive
// needs MaxConns (here or in the balancer) at most that, and a request
// takes a kept connection before it dials, so that requests in flight
// plus kept connections stay within MaxConns. Only a request without a
// body and with an idempotent method goes on a kept connection, and is
// sent once more on a new connection when the kept one ends before any
// record of the response (php-fpm closes a worker's connection at
// pm.max_requests); any other request closes a kept connection, freeing
// its worker, and dials. A kept connection is checked with one
// non-blocking MSG_PEEK before reuse (rawconn.Quiet). Check uses a kept
// connection when there is one; while it waits for a connection of its
// own, finished connections are closed rather than kept.
//
// # Capacity
//
// Capacity asks the instance how many requests it serves at once, for the
// balancer's max_conns: auto: php-fpm's status page (StatusPath, requested
// with "?json&full"; the workers it lists are the capacity with pm =
// static only) or FCGI_GET_VALUES (FCGI_MAX_CONNS and FCGI_MAX_REQS, which
// php-cgi -b answers and php-fpm does not). With KeepAlive, that bound is
// what keeps the connections within the workers; a change of capacity
// closes the kept connections.
//
// # The exchange
//
// Junction writes every request itself, framed by internal/fcgiwire (the
// record layout its FastCGI front end uses too). BEGIN_REQUEST, the
// PARAMS records and the empty PARAMS record that ends them go out in one
// write; for a request without a body — most GETs — that write also holds
// the empty STDIN record, and the whole request is sent before the
// response is read, on the calling goroutine. A request with a body gets
// one more goroutine, owned by the exchange, which streams the body as
// STDIN records of at most 64 KiB while the calling goroutine reads the
// response: an application may answer before it has read the whole body,
// or echo it while it reads. That goroutine ends before Serve returns;
// when the response is over while it still waits for the client's body,
// the read is interrupted through http.ResponseController where the front
// end supports it.
//
// Junction reads the response records itself, and the head is parsed by
// backends/cgiresp, the parser the CGI backend uses: a missing Status
// means 200, a lone local Location is returned as *backends.LocalRedirect.
// STDERR records are logged at Warn level with the instance and script.
//
// # Request bodies
//
// The instance gets exactly CONTENT_LENGTH bytes. A body of unknown length
// (chunked, from plain HTTP) is refused with 411: php-fpm would see an
// empty body, and junction does not spool bodies. A body that ends short
// closes the connection before the end of STDIN is sent, so the script
// never takes a truncated body for a complete one.
//
// # Errors
//
// Failures before the response head was written are returned from Serve,
// never written: a dial failure as *backends.DialError (the request body has
// not been read: it is read only once the connection is up), a full
// MaxConns or an END_REQUEST with FCGI_OVERLOADED as backends.ErrOverloaded
// (when no body byte was read yet), no response head within Timeout as a
// *backends.Error with status 504, a malformed head or a lost connection
// with status 502. A request body that could not be read from the client
// (it ended before Content-Length, or the read failed) is a
// *backends.ClientError (400) wrapping ErrClientBody: the client's failure,
// not the instance's. The request context closes the connection, which
// stops the request; Serve then returns backends.ContextError (a client
// that went away is a *backends.ClientError too). After the head was
// written, failures end the response early and are logged.
package fastcgi
