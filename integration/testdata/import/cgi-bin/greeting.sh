#!/bin/sh
# Prints the variable the imported configuration sets (Apache SetEnv,
# lighttpd setenv, uWSGI env): the same in the old setup and in junction.
printf 'Content-Type: text/plain\r\n\r\n'
printf 'GREETING=%s\n' "$GREETING"
