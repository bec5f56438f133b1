#!/bin/sh
# A non-parsed-header script: it writes the HTTP status line itself.
printf 'HTTP/1.1 200 OK\r\n'
printf 'Content-Type: text/plain\r\n\r\n'
echo 'Hello from an NPH script'
