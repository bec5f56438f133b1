#!/bin/sh
# The smallest CGI script: a document response with an explicit Status.
printf 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n'
printf 'Hello from sh\n'
printf 'query=%s\n' "$QUERY_STRING"
