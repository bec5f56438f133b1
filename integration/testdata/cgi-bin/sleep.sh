#!/bin/sh
# Hangs without answering. Writes its pid to ../run/sleep-QUERY.pid so a
# test can check that junction killed it. The query is a plain name.
name=$(printf '%s' "$QUERY_STRING" | tr -cd 'A-Za-z0-9_-')
echo $$ > "$(dirname "$0")/../run/sleep-$name.pid"
exec sleep 300
