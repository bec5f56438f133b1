#!/bin/sh
# An explicit 302 with a relative Location: a client redirect. It must reach
# the browser unchanged, never be followed inside the server.
printf 'Status: 302 Found\r\n'
printf 'Location: ../x\r\n'
printf 'Content-Type: text/plain\r\n\r\n'
echo 'moved to ../x'
