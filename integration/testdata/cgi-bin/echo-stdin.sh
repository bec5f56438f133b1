#!/bin/sh
# Prints its head at once, then copies stdin to stdout while it reads it:
# a full-duplex exchange. Neither the front server nor junction may wait
# for the whole body before passing output on, nor for the output to be
# read before taking more body.
printf 'Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n'
exec cat
