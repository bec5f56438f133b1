#!/usr/bin/python3
import os
import sys
sys.stdout.write("Content-Type: text/plain\r\n\r\n")
sys.stdout.write("Hello from python\n")
sys.stdout.write("query=%s\n" % os.environ.get("QUERY_STRING", ""))
