#!/bin/sh
# Writes a line, then sleeps before the second: a streaming front end
# delivers the first line while the script still runs.
printf 'Content-Type: text/plain\r\n\r\n'
printf 'first\n'
sleep 2
printf 'second\n'
