#!/bin/sh
# Prints the CGI environment, one NAME=value a line, sorted.
printf 'Content-Type: text/plain\r\n\r\n'
env | LC_ALL=C sort
