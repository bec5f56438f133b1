#!/bin/sh
# Prints the CGI environment the script received, sorted.
printf 'Content-Type: text/plain\r\n\r\n'
env | LC_ALL=C sort
