#!/bin/sh
# A client redirect: explicit Status with a relative Location, which must
# reach the client unchanged.
printf 'Status: 302 Found\r\nLocation: ../elsewhere\r\nContent-Type: text/plain\r\n\r\nmoved\n'
