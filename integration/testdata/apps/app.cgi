#!/bin/sh
# One small CGI application for TestAppsEveryProtocol: the same URLs must
# give the same answers through junction's SCGI, FastCGI, AJP and HTTP
# listeners. PATH_INFO is the page (junction's script backend sets
# SCRIPT_NAME to its url_prefix).
case "$PATH_INFO" in
/page)
	printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
	printf '<p>page method=%s query=%s</p>\n' "$REQUEST_METHOD" "$QUERY_STRING"
	;;
/post)
	sum=$(head -c "${CONTENT_LENGTH:-0}" | sha256sum | cut -d' ' -f1)
	printf 'Content-Type: text/plain\r\n\r\n%s %s %s\n' "$CONTENT_TYPE" "$CONTENT_LENGTH" "$sum"
	;;
/redirect)
	# An explicit status with a relative Location: a client redirect.
	printf 'Status: 302 Found\r\nLocation: page?from=redirect\r\nContent-Type: text/plain\r\n\r\nmoved\n'
	;;
/local)
	# Only a local Location: junction serves /app/page instead (RFC 3875 6.2.2).
	printf 'Location: %s/page?from=local\r\n\r\n' "$SCRIPT_NAME"
	;;
/cookie)
	printf 'Content-Type: text/plain\r\n'
	printf 'Set-Cookie: session=abc123; Path=/app; HttpOnly\r\n'
	printf 'Set-Cookie: theme=dark; Max-Age=3600\r\n\r\n'
	printf 'cookies set\n'
	;;
*)
	printf 'Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno page %s\n' "$PATH_INFO"
	;;
esac
