#!/usr/bin/python3
# Prints the SHA-256 and length of the request body it read from stdin.
import hashlib
import os
import sys
h = hashlib.sha256()
n = 0
while True:
    b = sys.stdin.buffer.read(1 << 16)
    if not b:
        break
    h.update(b)
    n += len(b)
sys.stdout.write("Content-Type: text/plain\r\n\r\n")
sys.stdout.write("sha256=%s\nlength=%d\ncontent_length=%s\n" % (h.hexdigest(), n, os.environ.get("CONTENT_LENGTH", "")))
