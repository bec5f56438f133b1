#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
printf 'PATH_INFO=%s\n' "$PATH_INFO"
printf 'SCRIPT_NAME=%s\n' "$SCRIPT_NAME"
