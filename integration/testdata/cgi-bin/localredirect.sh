#!/bin/sh
# A local redirect (RFC 3875 6.2.2): only a Location with an absolute path.
printf 'Location: /cgi-bin/hello.sh\r\n\r\n'
