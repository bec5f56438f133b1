#!/usr/bin/env python3
"""Reads the request body (CONTENT_LENGTH bytes) and answers with its
length and SHA-256; with ?echo it sends the body back as well."""
import hashlib
import os
import sys

length = int(os.environ.get("CONTENT_LENGTH") or 0)
body = sys.stdin.buffer.read(length) if length > 0 else b""
out = sys.stdout.buffer
out.write(b"Content-Type: text/plain\r\n\r\n")
out.write(b"method=%s\n" % os.environ.get("REQUEST_METHOD", "").encode())
out.write(b"length=%d\n" % len(body))
out.write(b"sha256=%s\n" % hashlib.sha256(body).hexdigest().encode())
if os.environ.get("QUERY_STRING") == "echo":
    out.write(body)
