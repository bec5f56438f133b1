#!/bin/sh
# Prints, waits a second, prints again: with streaming (nginx
# scgi_buffering off) the first line arrives a second before the second.
printf 'Content-Type: text/plain\r\n\r\n'
echo first
sleep 1
echo second
