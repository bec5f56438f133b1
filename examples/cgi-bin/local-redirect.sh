#!/bin/sh
# Only a Location with a local path and nothing else: a local redirect
# (RFC 3875 6.2.2). junction serves /cgi-bin/hello.sh instead, as a GET.
printf 'Location: /cgi-bin/hello.sh\r\n\r\n'
